// A Java client holding client certificates of two CAs in one key store, as a user's browser or
// an app would. Java's key manager picks the certificate to send by the CA names the server
// lists, so it picks right only when the two CAs have names of their own.
// Usage: java TwoCas.java KEYSTORE.p12 PASSWORD TRUSTSTORE.p12 URL...   (prints "URL STATUS BODY")
import java.io.FileInputStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.security.KeyStore;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManagerFactory;

public class TwoCas {
    public static void main(String[] args) throws Exception {
        char[] pass = args[1].toCharArray();
        KeyStore keys = KeyStore.getInstance("PKCS12");
        try (FileInputStream in = new FileInputStream(args[0])) { keys.load(in, pass); }
        KeyStore trust = KeyStore.getInstance("PKCS12");
        try (FileInputStream in = new FileInputStream(args[2])) { trust.load(in, pass); }
        KeyManagerFactory kmf = KeyManagerFactory.getInstance("PKIX");
        kmf.init(keys, pass);
        TrustManagerFactory tmf = TrustManagerFactory.getInstance("PKIX");
        tmf.init(trust);
        for (int i = 3; i < args.length; i++) {
            // A fresh context per server: no session or choice carried from one to the other.
            SSLContext ctx = SSLContext.getInstance("TLS");
            ctx.init(kmf.getKeyManagers(), tmf.getTrustManagers(), null);
            HttpClient http = HttpClient.newBuilder().sslContext(ctx).build();
            try {
                HttpResponse<String> r = http.send(
                    HttpRequest.newBuilder(URI.create(args[i])).build(),
                    HttpResponse.BodyHandlers.ofString());
                System.out.println(args[i] + " " + r.statusCode() + " " + r.body());
            } catch (Exception e) {
                System.out.println(args[i] + " FAILED " + e);
            }
        }
    }
}
