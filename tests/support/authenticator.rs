//! A software WebAuthn authenticator for the HTTP tests and the passkey benchmark: a P-256 key,
//! a credential id, a user handle and a signature counter, answering the options the service
//! sends with the JSON a browser's `PublicKeyCredential.toJSON()` gives (attestation "none",
//! ES256). It is deliberately not webauthn-rs (the service's verifier), so a test proves the
//! service accepts what an independent authenticator makes; the browser tests prove the same
//! with Chromium's own virtual authenticator. Every field a test may want wrong (origin, RP
//! id, counter, flags) is a public knob.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

/// Flags in authenticator data.
const USER_PRESENT: u8 = 0x01;
const USER_VERIFIED: u8 = 0x04;
const ATTESTED_CREDENTIAL: u8 = 0x40;

/// One credential on a software authenticator.
pub struct SoftAuthenticator {
    key: SigningKey,
    /// The credential id it makes.
    pub credential_id: Vec<u8>,
    /// The user handle the service gave at registration, given back at sign-in.
    pub user_handle: Option<Vec<u8>>,
    /// The signature counter; each assertion adds one first (0 stays 0: no counter).
    pub counter: u32,
    /// The origin it writes into client data (a phishing site would be another).
    pub origin: String,
    /// The relying party id it hashes into authenticator data; empty for the one in the options.
    pub rp_id: String,
    /// Whether it says it verified the person (PIN, biometric).
    pub verifies_user: bool,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64(text: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(text).expect("base64url from the service")
}

/// A CBOR item head: major type and argument.
fn cbor_head(out: &mut Vec<u8>, major: u8, value: u64) {
    let major = major << 5;
    match value {
        0..=23 => out.push(major | value as u8),
        24..=0xff => out.extend([major | 24, value as u8]),
        0x100..=0xffff => {
            out.push(major | 25);
            out.extend((value as u16).to_be_bytes());
        }
        _ => {
            out.push(major | 26);
            out.extend((value as u32).to_be_bytes());
        }
    }
}

fn cbor_int(out: &mut Vec<u8>, value: i64) {
    if value >= 0 {
        cbor_head(out, 0, value as u64);
    } else {
        cbor_head(out, 1, (-1 - value) as u64);
    }
}

fn cbor_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    cbor_head(out, 2, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn cbor_text(out: &mut Vec<u8>, text: &str) {
    cbor_head(out, 3, text.len() as u64);
    out.extend_from_slice(text.as_bytes());
}

impl SoftAuthenticator {
    /// A credential whose key and id come from `seed` (distinct seeds, distinct credentials),
    /// at `origin`.
    pub fn new(seed: u8, origin: &str) -> Self {
        let mut secret = [seed.max(1); 32];
        secret[0] = 0x42;
        Self {
            key: SigningKey::from_slice(&secret).expect("a valid P-256 scalar"),
            credential_id: Sha256::digest([seed, 0xc7]).to_vec(),
            user_handle: None,
            counter: 0,
            origin: origin.to_owned(),
            rp_id: String::new(),
            verifies_user: true,
        }
    }

    fn flags(&self) -> u8 {
        USER_PRESENT | if self.verifies_user { USER_VERIFIED } else { 0 }
    }

    fn rp_id_hash(&self, options_rp_id: &str) -> [u8; 32] {
        let rp_id = if self.rp_id.is_empty() { options_rp_id } else { &self.rp_id };
        Sha256::digest(rp_id.as_bytes()).into()
    }

    fn client_data(&self, kind: &str, challenge: &str) -> Vec<u8> {
        json!({ "type": kind, "challenge": challenge, "origin": self.origin, "crossOrigin": false })
            .to_string()
            .into_bytes()
    }

    /// The COSE_Key of the public key: EC2, ES256, P-256, x, y.
    fn cose_key(&self) -> Vec<u8> {
        let point = self.key.verifying_key().to_sec1_point(false);
        let bytes = point.as_bytes();
        let mut out = Vec::new();
        cbor_head(&mut out, 5, 5);
        cbor_int(&mut out, 1);
        cbor_int(&mut out, 2);
        cbor_int(&mut out, 3);
        cbor_int(&mut out, -7);
        cbor_int(&mut out, -1);
        cbor_int(&mut out, 1);
        cbor_int(&mut out, -2);
        cbor_bytes(&mut out, &bytes[1..33]);
        cbor_int(&mut out, -3);
        cbor_bytes(&mut out, &bytes[33..65]);
        out
    }

    /// Answers `navigator.credentials.create()` options (the service's
    /// `PublicKeyCredentialCreationOptionsJSON`) as `toJSON()` would.
    pub fn register(&mut self, options: &Value) -> Value {
        let challenge = options["challenge"].as_str().expect("a challenge");
        let rp_id = options["rp"]["id"].as_str().expect("an rp id");
        self.user_handle = Some(unb64(options["user"]["id"].as_str().expect("a user id")));
        let mut auth_data = self.rp_id_hash(rp_id).to_vec();
        auth_data.push(self.flags() | ATTESTED_CREDENTIAL);
        auth_data.extend(self.counter.to_be_bytes());
        auth_data.extend([0_u8; 16]);
        auth_data.extend((self.credential_id.len() as u16).to_be_bytes());
        auth_data.extend(&self.credential_id);
        auth_data.extend(self.cose_key());
        let mut attestation = Vec::new();
        cbor_head(&mut attestation, 5, 3);
        cbor_text(&mut attestation, "fmt");
        cbor_text(&mut attestation, "none");
        cbor_text(&mut attestation, "attStmt");
        cbor_head(&mut attestation, 5, 0);
        cbor_text(&mut attestation, "authData");
        cbor_bytes(&mut attestation, &auth_data);
        let client_data = self.client_data("webauthn.create", challenge);
        json!({
            "id": b64(&self.credential_id),
            "rawId": b64(&self.credential_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64(&client_data),
                "attestationObject": b64(&attestation),
                "transports": ["internal"],
            },
            "clientExtensionResults": {},
            "authenticatorAttachment": "platform",
        })
    }

    /// Answers `navigator.credentials.get()` options as `toJSON()` would, counting one use.
    pub fn assert(&mut self, options: &Value) -> Value {
        if self.counter > 0 {
            self.counter += 1;
        }
        let challenge = options["challenge"].as_str().expect("a challenge");
        let rp_id = options["rpId"].as_str().expect("an rp id");
        let mut auth_data = self.rp_id_hash(rp_id).to_vec();
        auth_data.push(self.flags());
        auth_data.extend(self.counter.to_be_bytes());
        let client_data = self.client_data("webauthn.get", challenge);
        let mut signed = auth_data.clone();
        signed.extend(Sha256::digest(&client_data));
        let signature: Signature = self.key.sign(&signed);
        json!({
            "id": b64(&self.credential_id),
            "rawId": b64(&self.credential_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64(&client_data),
                "authenticatorData": b64(&auth_data),
                "signature": b64(signature.to_der().as_bytes()),
                "userHandle": self.user_handle.as_deref().map(b64),
            },
            "clientExtensionResults": {},
            "authenticatorAttachment": "platform",
        })
    }
}
