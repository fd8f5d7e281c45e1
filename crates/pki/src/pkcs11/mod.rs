//! A CA key inside a PKCS#11 token (an HSM, a YubiKey through ykcs11 or OpenSC, a TPM through
//! tpm2-pkcs11, SoftHSM in the tests), behind [`SigningKey`]: the key is made inside the token
//! ([`TokenKey::generate`]: sensitive, never extractable) and signs there; this process holds
//! a session handle and the PIN, never the key.
//!
//! The token signs a digest (ECDSA, whose raw `r || s` is encoded here as an ECDSA-Sig-Value)
//! or the TBS bytes (RSA PKCS#1 v1.5 with SHA-256); the issuer reassembles the certificate
//! ([`crate::signer`]). A session lost on the way (the token restarted, was unplugged and
//! plugged back) is opened again, logged in again, and the operation retried once; a second
//! failure is an error and nothing is written.

mod uri;

pub use uri::{Pkcs11Uri, PIN_ENV};

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::{AuthPin, Ulong};
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey, EcPoint};
use openssl::ecdsa::EcdsaSig;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Public};
use openssl::rsa::Rsa;

use crate::error::{CryptoContext, Error, KeyStoreError, Result};
use crate::signer::{KeyLocation, SigningKey};
use x509::KeyAlgorithm;

/// DER of the OID of NIST P-256 (prime256v1), as CKA_EC_PARAMS.
const P256_PARAMS: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// DER of the OID of NIST P-384 (secp384r1).
const P384_PARAMS: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];

/// What the token says about a key: `pki ca status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TokenFacts {
    /// The token's label.
    pub token: String,
    /// The token's manufacturer, as it says.
    pub manufacturer: String,
    /// The token's model, as it says (`SoftHSM v2`, `YubiKey YK5`, …).
    pub model: String,
    /// The key's label.
    pub object: String,
    /// The slot says it is a hardware slot (CKF_HW_SLOT).
    pub hardware_slot: bool,
    /// CKA_EXTRACTABLE: the token would let the key out (wrapped).
    pub extractable: bool,
    /// CKA_NEVER_EXTRACTABLE: it never could.
    pub never_extractable: bool,
    /// CKA_SENSITIVE: its value cannot be read.
    pub sensitive: bool,
    /// CKA_ALWAYS_SENSITIVE: it never could be.
    pub always_sensitive: bool,
    /// CKA_LOCAL: made inside the token.
    pub local: bool,
}

impl TokenFacts {
    /// The token keeps the key: not extractable now or ever, sensitive now and always.
    pub fn kept_inside(&self) -> bool {
        !self.extractable && self.never_extractable && self.sensitive && self.always_sensitive
    }

    /// What may be said of the key: "in hardware" only for a key kept inside a token whose
    /// slot says it is hardware; never for a key the module says is extractable.
    pub fn protection(&self) -> String {
        if self.extractable || !self.sensitive {
            return format!(
                "NOT PROTECTED: the module says the key is {}; it can leave the token",
                if self.extractable {
                    "extractable"
                } else {
                    "not sensitive"
                }
            );
        }
        if !self.kept_inside() {
            return "sensitive and not extractable now, but it was extractable or readable once \
                    (a copy may exist)"
                .into();
        }
        if self.hardware_slot {
            "in hardware: never extractable, always sensitive".into()
        } else {
            "inside a software token: never extractable, always sensitive (as safe as the \
             token's files)"
                .into()
        }
    }
}

/// A private key inside a PKCS#11 token, signing there.
pub struct TokenKey {
    uri: Pkcs11Uri,
    module: Pkcs11,
    pin: AuthPin,
    algorithm: KeyAlgorithm,
    public: PKey<Public>,
    open: Mutex<Option<Open>>,
    reconnects: AtomicU64,
}

/// A logged-in session and the key's handle in it.
struct Open {
    slot: Slot,
    session: Session,
    key: ObjectHandle,
}

impl std::fmt::Debug for TokenKey {
    // The URI holds no PIN; the PIN is never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKey")
            .field("uri", &self.uri.to_string())
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl TokenKey {
    /// Opens the private key `uri` names: loads the module, finds the token, logs in with the
    /// PIN of `pin-source` (or [`PIN_ENV`]) and finds the key and its public half.
    pub fn open(uri: &Pkcs11Uri) -> Result<TokenKey> {
        let module = module(module_path(uri)?)?;
        let pin = pin(uri)?;
        let open = connect(&module, uri, &pin)?;
        let (algorithm, public) = public_of(&open.session, open.key, uri)?;
        let id = open
            .session
            .get_attributes(open.key, &[AttributeType::Id])
            .ok()
            .and_then(|a| {
                a.into_iter().find_map(|a| match a {
                    Attribute::Id(id) if !id.is_empty() => Some(id),
                    _ => None,
                })
            });
        let uri = Pkcs11Uri {
            id: uri.id.clone().or(id),
            ..uri.clone()
        };
        Ok(TokenKey {
            uri,
            module,
            pin,
            algorithm,
            public,
            open: Mutex::new(Some(open)),
            reconnects: AtomicU64::new(0),
        })
    }

    /// Makes a key pair of `algorithm` inside the token, labelled with the URI's `object`, with
    /// the URI's `id` or a fresh random one: private, sensitive, never extractable, for signing
    /// only. An object of that label (or id) already there is refused, or destroyed first when
    /// `replace` (`--force`).
    pub fn generate(uri: &Pkcs11Uri, algorithm: KeyAlgorithm, replace: bool) -> Result<TokenKey> {
        let token = uri.token_label().to_owned();
        let object = uri.object.clone().ok_or_else(|| {
            KeyStoreError::Uri("it names no object= (the label of the key to make)".into())
        })?;
        let label = Attribute::Label(object.clone().into_bytes());
        let module = module(module_path(uri)?)?;
        let pin = pin(uri)?;
        let slot = find_slot(&module, uri)?;
        let session = login(&module, slot, &pin, &token)?;
        let mut existing = session
            .find_objects(std::slice::from_ref(&label))
            .map_err(|e| ck(&token, "C_FindObjects", &e))?;
        if let Some(id) = &uri.id {
            let same_id = session
                .find_objects(&[Attribute::Id(id.clone())])
                .map_err(|e| ck(&token, "C_FindObjects", &e))?;
            for h in same_id {
                if !existing.contains(&h) {
                    existing.push(h);
                }
            }
        }
        if !existing.is_empty() && !replace {
            return Err(KeyStoreError::KeyExists { token, object }.into());
        }
        for handle in existing {
            session
                .destroy_object(handle)
                .map_err(|e| ck(&token, "C_DestroyObject", &e))?;
        }
        // The URI's id when it gives one (a PIV token maps ids to its key slots), else a random one.
        let id = match &uri.id {
            Some(id) => id.clone(),
            None => {
                let mut id = vec![0u8; 16];
                openssl::rand::rand_bytes(&mut id).step("rand")?;
                id
            }
        };
        let bits = |n: usize| {
            Ulong::try_from(n)
                .map(Attribute::ModulusBits)
                .map_err(|e| ck(&token, "C_GenerateKeyPair", &e))
        };
        let (mechanism, shape) = match algorithm {
            KeyAlgorithm::EcP256 => (
                Mechanism::EccKeyPairGen,
                Attribute::EcParams(P256_PARAMS.to_vec()),
            ),
            KeyAlgorithm::EcP384 => (
                Mechanism::EccKeyPairGen,
                Attribute::EcParams(P384_PARAMS.to_vec()),
            ),
            KeyAlgorithm::Rsa2048 => (Mechanism::RsaPkcsKeyPairGen, bits(2048)?),
            KeyAlgorithm::Rsa3072 => (Mechanism::RsaPkcsKeyPairGen, bits(3072)?),
            KeyAlgorithm::Rsa4096 => (Mechanism::RsaPkcsKeyPairGen, bits(4096)?),
            KeyAlgorithm::Ed25519 => {
                return Err(KeyStoreError::Unsupported {
                    token,
                    detail: "an Ed25519 CA key is made in key files only; use p256, p384 or \
                             rsa3072 in a token"
                        .into(),
                }
                .into())
            }
        };
        let mut public = vec![
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Verify(true),
            Attribute::Encrypt(false),
            Attribute::Wrap(false),
            label.clone(),
            Attribute::Id(id.clone()),
            shape,
        ];
        if !matches!(algorithm, KeyAlgorithm::EcP256 | KeyAlgorithm::EcP384) {
            public.push(Attribute::PublicExponent(vec![1, 0, 1]));
        }
        let private = [
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Sign(true),
            Attribute::Decrypt(false),
            Attribute::Unwrap(false),
            Attribute::Derive(false),
            label,
            Attribute::Id(id.clone()),
        ];
        session
            .generate_key_pair(&mechanism, &public, &private)
            .map_err(|e| ck(&token, "C_GenerateKeyPair", &e))?;
        drop(session);
        TokenKey::open(&Pkcs11Uri {
            id: Some(id),
            ..uri.clone()
        })
    }

    /// The URI of this key (with its id; never a PIN): what the PKI records.
    pub fn uri(&self) -> &Pkcs11Uri {
        &self.uri
    }

    /// As a shared signing key for an [`Issuer`](crate::Issuer).
    pub fn shared(self) -> Arc<dyn SigningKey> {
        Arc::new(self)
    }

    /// Logs this application out of the token, as a token that restarted does: the next
    /// operation finds its session unusable, logs in again and carries on. For fault drills
    /// and tests.
    pub fn logout(&self) -> Result<()> {
        let guard = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(open) = guard.as_ref() {
            open.session
                .logout()
                .map_err(|e| ck(self.uri.token_label(), "C_Logout", &e))?;
        }
        Ok(())
    }

    /// How many times a lost session was opened again (a token that restarted under a running
    /// CA shows here).
    pub fn reconnects(&self) -> u64 {
        self.reconnects.load(Ordering::Relaxed)
    }

    /// Runs `op` on the session, reopening it and retrying once when the session was lost.
    fn run<T>(
        &self,
        operation: &'static str,
        op: impl Fn(&Pkcs11, &Open) -> cryptoki::error::Result<T>,
    ) -> Result<T> {
        let token = self.uri.token_label();
        let mut guard = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let first = match guard.as_ref() {
            Some(open) => op(&self.module, open),
            None => Err(CkError::Pkcs11(
                RvError::SessionHandleInvalid,
                cryptoki::context::Function::Sign,
            )),
        };
        match first {
            Ok(v) => Ok(v),
            Err(e) if lost(&e) => {
                // Dropping the old session closes what is left of it.
                *guard = None;
                let lost = |detail: String| {
                    Error::from(KeyStoreError::SessionLost {
                        token: token.to_owned(),
                        detail,
                    })
                };
                let fresh = connect(&self.module, &self.uri, &self.pin).map_err(|e| {
                    lost(match e {
                        Error::KeyStore(k) => k.to_string(),
                        other => other.to_string(),
                    })
                })?;
                // The token that came back must hold the same key (not another one of that label).
                let (_, public) = public_of(&fresh.session, fresh.key, &self.uri)?;
                if !public.public_eq(&self.public) {
                    return Err(lost(format!(
                        "the token now holds another key labelled {:?}",
                        self.uri.object_label()
                    )));
                }
                self.reconnects.fetch_add(1, Ordering::Relaxed);
                let again = op(&self.module, &fresh);
                *guard = Some(fresh);
                again.map_err(|e| ck(token, operation, &e).into())
            }
            Err(e) => Err(ck(token, operation, &e).into()),
        }
    }
}

impl SigningKey for TokenKey {
    fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    fn public_key(&self) -> Result<PKey<Public>> {
        Ok(self.public.clone())
    }

    fn sign_tbs(&self, tbs: &[u8]) -> Result<Vec<u8>> {
        match self.algorithm {
            KeyAlgorithm::EcP256 | KeyAlgorithm::EcP384 => {
                let digest =
                    openssl::hash::hash(self.algorithm.signature_digest(), tbs).step("dgst")?;
                let raw = self.run("C_Sign", |_, o| {
                    o.session.sign(&Mechanism::Ecdsa, o.key, &digest)
                })?;
                ecdsa_sig_value(&raw, self.uri.token_label())
            }
            KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096 => self
                .run("C_Sign", |_, o| {
                    o.session.sign(&Mechanism::Sha256RsaPkcs, o.key, tbs)
                }),
            KeyAlgorithm::Ed25519 => Err(KeyStoreError::Unsupported {
                token: self.uri.token_label().to_owned(),
                detail: "Ed25519 keys in a token are not supported".into(),
            }
            .into()),
        }
    }

    fn describe(&self) -> String {
        format!(
            "{} key {:?} in PKCS#11 token {:?}",
            self.algorithm,
            self.uri.object_label(),
            self.uri.token_label()
        )
    }

    fn location(&self) -> KeyLocation {
        KeyLocation::Pkcs11(Box::new(self.uri.clone()))
    }

    fn token_facts(&self) -> Result<Option<TokenFacts>> {
        let (attrs, slot) = self.run("C_GetAttributeValue", |_, o| {
            let attrs = o.session.get_attributes(
                o.key,
                &[
                    AttributeType::Extractable,
                    AttributeType::NeverExtractable,
                    AttributeType::Sensitive,
                    AttributeType::AlwaysSensitive,
                    AttributeType::Local,
                ],
            )?;
            Ok((attrs, o.slot))
        })?;
        // An attribute the module does not answer counts against the key.
        let mut facts = TokenFacts {
            token: self.uri.token_label().to_owned(),
            manufacturer: String::new(),
            model: String::new(),
            object: self.uri.object_label().to_owned(),
            hardware_slot: false,
            extractable: true,
            never_extractable: false,
            sensitive: false,
            always_sensitive: false,
            local: false,
        };
        for a in attrs {
            match a {
                Attribute::Extractable(v) => facts.extractable = v,
                Attribute::NeverExtractable(v) => facts.never_extractable = v,
                Attribute::Sensitive(v) => facts.sensitive = v,
                Attribute::AlwaysSensitive(v) => facts.always_sensitive = v,
                Attribute::Local(v) => facts.local = v,
                _ => {}
            }
        }
        if let Ok(info) = self.module.get_slot_info(slot) {
            facts.hardware_slot = info.hardware_slot();
        }
        if let Ok(info) = self.module.get_token_info(slot) {
            facts.manufacturer = info.manufacturer_id().trim().to_owned();
            facts.model = info.model().trim().to_owned();
        }
        Ok(Some(facts))
    }
}

/// Whether `e` says the session (or the login, or the token) went away: worth one reconnect.
fn lost(e: &CkError) -> bool {
    matches!(
        e,
        CkError::Pkcs11(
            RvError::SessionHandleInvalid
                | RvError::SessionClosed
                | RvError::DeviceRemoved
                | RvError::DeviceError
                | RvError::TokenNotPresent
                | RvError::UserNotLoggedIn
                | RvError::KeyHandleInvalid
                | RvError::ObjectHandleInvalid,
            _
        )
    )
}

/// A cryptoki error as ours: a wrong PIN by name, anything else by its PKCS#11 code (one line,
/// never cryptoki's paragraph).
fn ck(token: &str, operation: &'static str, e: &CkError) -> KeyStoreError {
    match e {
        CkError::Pkcs11(RvError::PinIncorrect | RvError::PinInvalid | RvError::PinLenRange, _) => {
            KeyStoreError::WrongPin {
                token: token.to_owned(),
            }
        }
        CkError::Pkcs11(RvError::PinLocked, _) => KeyStoreError::PinLocked {
            token: token.to_owned(),
        },
        CkError::Pkcs11(rv, _) => KeyStoreError::Device {
            token: token.to_owned(),
            operation,
            code: format!("{rv:?}"),
        },
        other => KeyStoreError::Device {
            token: token.to_owned(),
            operation,
            code: other.to_string(),
        },
    }
}

fn module_path(uri: &Pkcs11Uri) -> Result<&Path, KeyStoreError> {
    uri.module_path.as_deref().ok_or_else(|| {
        KeyStoreError::Uri(
            "it names no module-path= (the PKCS#11 library, e.g. \
             /usr/lib/softhsm/libsofthsm2.so)"
                .into(),
        )
    })
}

/// The module at `path`, loaded and initialised once per process (PKCS#11 allows one
/// `C_Initialize` per application).
fn module(path: &Path) -> Result<Pkcs11, KeyStoreError> {
    static MODULES: Mutex<Vec<(PathBuf, Pkcs11)>> = Mutex::new(Vec::new());
    let mut loaded = MODULES.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((_, m)) = loaded.iter().find(|(p, _)| p == path) {
        return Ok(m.clone());
    }
    let fail = |detail: String| KeyStoreError::Module {
        path: path.to_owned(),
        detail,
    };
    if !path.is_file() {
        return Err(fail(
            "no such file (install the module's package, or correct module-path=)".into(),
        ));
    }
    let m = Pkcs11::new(path).map_err(|e| fail(e.to_string()))?;
    match m.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(CkError::Pkcs11(rv, _)) => return Err(fail(format!("C_Initialize: {rv:?}"))),
        Err(e) => return Err(fail(e.to_string())),
    }
    loaded.push((path.to_owned(), m.clone()));
    Ok(m)
}

/// The PIN: the `pin-source` file's first line, else [`PIN_ENV`].
fn pin(uri: &Pkcs11Uri) -> Result<AuthPin, KeyStoreError> {
    let mut text = match &uri.pin_source {
        Some(path) => std::fs::read_to_string(path).map_err(|source| KeyStoreError::PinSource {
            path: path.clone(),
            source,
        })?,
        None => std::env::var(PIN_ENV).map_err(|_| KeyStoreError::NoPin {
            token: uri.token_label().to_owned(),
            env: PIN_ENV,
        })?,
    };
    let end = text.find(['\r', '\n']).unwrap_or(text.len());
    text.truncate(end);
    if text.is_empty() {
        return Err(KeyStoreError::NoPin {
            token: uri.token_label().to_owned(),
            env: PIN_ENV,
        });
    }
    Ok(AuthPin::from(text))
}

/// The slot of the token the URI names (by label, serial, model, manufacturer, slot id).
fn find_slot(module: &Pkcs11, uri: &Pkcs11Uri) -> Result<Slot, KeyStoreError> {
    let token = uri.token_label();
    let slots = module
        .get_slots_with_token()
        .map_err(|e| ck(token, "C_GetSlotList", &e))?;
    let mut seen = Vec::new();
    for slot in slots {
        if uri.slot_id.is_some_and(|id| id != slot.id()) {
            continue;
        }
        let Ok(info) = module.get_token_info(slot) else {
            continue;
        };
        if !info.token_initialized() {
            continue;
        }
        let label = info.label().trim_end().to_owned();
        let same = |want: &Option<String>, have: &str| {
            want.as_deref().is_none_or(|w| w == have.trim_end())
        };
        if same(&uri.token, &label)
            && same(&uri.serial, info.serial_number())
            && same(&uri.model, info.model())
            && same(&uri.manufacturer, info.manufacturer_id())
        {
            return Ok(slot);
        }
        seen.push(format!("{label:?}"));
    }
    Err(KeyStoreError::TokenNotFound {
        token: token.to_owned(),
        module: uri.module_path.clone().unwrap_or_default(),
        seen,
    })
}

/// A read-write session on `slot`, logged in as the user.
fn login(
    module: &Pkcs11,
    slot: Slot,
    pin: &AuthPin,
    token: &str,
) -> Result<Session, KeyStoreError> {
    let session = module
        .open_rw_session(slot)
        .map_err(|e| ck(token, "C_OpenSession", &e))?;
    match session.login(UserType::User, Some(pin)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(session),
        Err(e) => Err(ck(token, "C_Login", &e)),
    }
}

/// Finds the token, logs in and finds the key.
fn connect(module: &Pkcs11, uri: &Pkcs11Uri, pin: &AuthPin) -> Result<Open> {
    let token = uri.token_label();
    let slot = find_slot(module, uri)?;
    let session = login(module, slot, pin, token)?;
    let key = find_private(&session, uri)?;
    Ok(Open { slot, session, key })
}

fn find_private(session: &Session, uri: &Pkcs11Uri) -> Result<ObjectHandle, KeyStoreError> {
    let token = uri.token_label();
    let mut template = vec![Attribute::Class(ObjectClass::PRIVATE_KEY)];
    match (&uri.object, &uri.id) {
        (None, None) => {
            return Err(KeyStoreError::Uri(
                "it names no object= (the label of the CA key)".into(),
            ))
        }
        (object, id) => {
            if let Some(o) = object {
                template.push(Attribute::Label(o.clone().into_bytes()));
            }
            if let Some(id) = id {
                template.push(Attribute::Id(id.clone()));
            }
        }
    }
    let found = session
        .find_objects(&template)
        .map_err(|e| ck(token, "C_FindObjects", &e))?;
    match found.as_slice() {
        [key] => Ok(*key),
        [] => Err(KeyStoreError::KeyNotFound {
            token: token.to_owned(),
            object: uri.object_label().to_owned(),
        }),
        many => Err(KeyStoreError::Ambiguous {
            token: token.to_owned(),
            object: uri.object_label().to_owned(),
            count: many.len(),
        }),
    }
}

/// The key's algorithm and public half: RSA from the private key's modulus and exponent, EC
/// from the public key object of the same id (a private EC key carries no point).
fn public_of(
    session: &Session,
    key: ObjectHandle,
    uri: &Pkcs11Uri,
) -> Result<(KeyAlgorithm, PKey<Public>)> {
    let token = uri.token_label();
    let attrs = session
        .get_attributes(
            key,
            &[
                AttributeType::KeyType,
                AttributeType::Id,
                AttributeType::Modulus,
                AttributeType::PublicExponent,
                AttributeType::EcParams,
            ],
        )
        .map_err(|e| ck(token, "C_GetAttributeValue", &e))?;
    let (mut kind, mut id, mut n, mut e, mut params) = (None, None, None, None, None);
    for a in attrs {
        match a {
            Attribute::KeyType(t) => kind = Some(t),
            Attribute::Id(v) => id = Some(v),
            Attribute::Modulus(v) => n = Some(v),
            Attribute::PublicExponent(v) => e = Some(v),
            Attribute::EcParams(v) => params = Some(v),
            _ => {}
        }
    }
    let unsupported = |detail: String| {
        Error::from(KeyStoreError::Unsupported {
            token: token.to_owned(),
            detail,
        })
    };
    let public = match kind {
        Some(KeyType::RSA) => {
            let (Some(n), Some(e)) = (n, e) else {
                return Err(unsupported("the RSA key shows no modulus".into()));
            };
            let rsa = Rsa::from_public_components(
                BigNum::from_slice(&n).step("rsa")?,
                BigNum::from_slice(&e).step("rsa")?,
            )
            .step("rsa")?;
            PKey::from_rsa(rsa).step("rsa")?
        }
        Some(KeyType::EC) => {
            let nid = match params.as_deref() {
                Some(P256_PARAMS) => Nid::X9_62_PRIME256V1,
                Some(P384_PARAMS) => Nid::SECP384R1,
                _ => {
                    return Err(unsupported(
                        "an EC key on a curve other than P-256/P-384".into(),
                    ))
                }
            };
            let point = ec_point(session, id.as_deref(), uri)?;
            let group = EcGroup::from_curve_name(nid).step("ec")?;
            let mut ctx = openssl::bn::BigNumContext::new().step("ec")?;
            let point = EcPoint::from_bytes(&group, &point, &mut ctx).step("ec")?;
            PKey::from_ec_key(EcKey::from_public_key(&group, &point).step("ec")?).step("ec")?
        }
        other => return Err(unsupported(format!("a key of type {other:?}"))),
    };
    let algorithm = KeyAlgorithm::of(&public).ok_or_else(|| {
        unsupported(format!(
            "a key of {} bits we do not sign with",
            public.bits()
        ))
    })?;
    Ok((algorithm, public))
}

/// The EC point of the public key object beside the private key (same id, else same label).
fn ec_point(session: &Session, id: Option<&[u8]>, uri: &Pkcs11Uri) -> Result<Vec<u8>> {
    let token = uri.token_label();
    let mut template = vec![Attribute::Class(ObjectClass::PUBLIC_KEY)];
    match (id, &uri.object) {
        (Some(id), _) if !id.is_empty() => template.push(Attribute::Id(id.to_vec())),
        (_, Some(label)) => template.push(Attribute::Label(label.clone().into_bytes())),
        _ => {}
    }
    let found = session
        .find_objects(&template)
        .map_err(|e| ck(token, "C_FindObjects", &e))?;
    let no_point = || {
        Error::from(KeyStoreError::Unsupported {
            token: token.to_owned(),
            detail: format!(
                "no public key object beside the private key {:?} (its EC point is needed)",
                uri.object_label()
            ),
        })
    };
    let handle = *found.first().ok_or_else(no_point)?;
    let attrs = session
        .get_attributes(handle, &[AttributeType::EcPoint])
        .map_err(|e| ck(token, "C_GetAttributeValue", &e))?;
    let point = attrs
        .into_iter()
        .find_map(|a| match a {
            Attribute::EcPoint(p) => Some(p),
            _ => None,
        })
        .ok_or_else(no_point)?;
    // CKA_EC_POINT is a DER OCTET STRING around the point (some modules give the bare point).
    match point.as_slice() {
        [0x04, len, rest @ ..] if usize::from(*len) == rest.len() && *len < 0x80 => {
            Ok(rest.to_vec())
        }
        [0x04, 0x81, len, rest @ ..] if usize::from(*len) == rest.len() => Ok(rest.to_vec()),
        _ => Ok(point),
    }
}

/// PKCS#11's ECDSA signature (`r || s`, each half the curve's size) as the DER ECDSA-Sig-Value
/// that X.509 carries.
fn ecdsa_sig_value(raw: &[u8], token: &str) -> Result<Vec<u8>> {
    if raw.is_empty() || !raw.len().is_multiple_of(2) {
        return Err(KeyStoreError::Device {
            token: token.to_owned(),
            operation: "C_Sign",
            code: format!("an ECDSA signature of {} bytes", raw.len()),
        }
        .into());
    }
    let (r, s) = raw.split_at(raw.len() / 2);
    let sig = EcdsaSig::from_private_components(
        BigNum::from_slice(r).step("ecdsa")?,
        BigNum::from_slice(s).step("ecdsa")?,
    )
    .step("ecdsa")?;
    sig.to_der().step("ecdsa")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_ecdsa_becomes_a_der_sig_value_that_verifies() {
        let key = x509::key::generate(KeyAlgorithm::EcP256).expect("key");
        let digest =
            openssl::hash::hash(openssl::hash::MessageDigest::sha256(), b"tbs").expect("hash");
        let sig = EcdsaSig::sign(&digest, &*key.ec_key().expect("ec")).expect("sign");
        let mut raw = vec![0u8; 64];
        let (r, s) = (sig.r().to_vec(), sig.s().to_vec());
        raw[32 - r.len()..32].copy_from_slice(&r);
        raw[64 - s.len()..].copy_from_slice(&s);
        let der = ecdsa_sig_value(&raw, "t").expect("der");
        let back = EcdsaSig::from_der(&der).expect("parse");
        assert!(back
            .verify(&digest, &*key.ec_key().expect("ec"))
            .expect("verify"));
        assert!(ecdsa_sig_value(&raw[..63], "t").is_err());
    }

    #[test]
    fn only_a_key_kept_inside_a_hardware_slot_is_in_hardware() {
        let kept = TokenFacts {
            token: "ca".into(),
            manufacturer: "m".into(),
            model: "x".into(),
            object: "o".into(),
            hardware_slot: true,
            extractable: false,
            never_extractable: true,
            sensitive: true,
            always_sensitive: true,
            local: true,
        };
        assert!(kept.protection().starts_with("in hardware"));
        let leaky = TokenFacts {
            extractable: true,
            never_extractable: false,
            ..kept.clone()
        };
        assert!(leaky.protection().starts_with("NOT PROTECTED"));
        assert!(!leaky.protection().contains("in hardware"));
        let soft = TokenFacts {
            hardware_slot: false,
            ..kept
        };
        assert!(soft.protection().contains("software token"));
    }
}
