//! One EST request over the client's connection, and what the CA answered to it.

use awc::http::Method;

use crate::error::Failure;
use crate::Client;

/// What the CA answered to one EST request.
pub(super) struct Answer {
    pub(super) status: u16,
    pub(super) body: Vec<u8>,
    pub(super) retry_after: Option<u64>,
}

impl Answer {
    /// A non-200 answer as the CA's refusal: its status, the first line of its reason, and
    /// any `Retry-After`.
    pub(super) fn refused(&self) -> super::EstError {
        let reason = String::from_utf8_lossy(&self.body);
        super::EstError::Refused {
            status: self.status,
            reason: reason.lines().next().unwrap_or("").trim().to_owned(),
            retry_after: self.retry_after,
        }
    }
}

impl Client {
    /// One EST request: `path` on the server, a base64 PKCS#10 body (POST), Basic
    /// credentials; the status, the body and any `Retry-After`.
    pub(super) async fn est(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
        basic: Option<(&str, &str)>,
    ) -> Result<Answer, Failure> {
        let (uri, _) = self.url(path)?;
        let mut req = self.http.request(method, uri);
        if let Some((user, password)) = basic {
            req = req.basic_auth(user, password);
        }
        let sent = match body {
            Some(b) => {
                req.insert_header(("Content-Type", "application/pkcs10"))
                    .insert_header(("Content-Transfer-Encoding", "base64"))
                    .send_body(b)
                    .await
            }
            None => req.send().await,
        };
        match sent {
            Ok(mut res) => {
                let bytes = res.body().limit(1 << 20).await.map_err(|e| {
                    Failure::new(
                        crate::error::FailureClass::Other,
                        "the CA's answer could not be read",
                        "retry; see the CA's log",
                        e.to_string(),
                    )
                })?;
                // Seconds only: an HTTP date would need the CA's clock to agree with ours.
                let retry_after = res
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse().ok());
                Ok(Answer {
                    status: res.status().as_u16(),
                    body: bytes.to_vec(),
                    retry_after,
                })
            }
            Err(e) => Err(self.explain(&e).await),
        }
    }
}
