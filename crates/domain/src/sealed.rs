//! Sealing: authenticated encryption of what must wait in the database with a live secret in it.
//!
//! A pending outbox message carries a working sign-in link. It is stored sealed with
//! XChaCha20-Poly1305 under a key derived from the server secret, so a copy of the database
//! alone yields no usable link. The associated data binds each sealed body to its row (the
//! link's token hash), so a body moved to another row does not open.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use crate::secret::{KeyPurpose, ServerSecret};

/// Bytes of the random nonce stored in front of the ciphertext.
pub const NONCE_BYTES: usize = 24;

/// The sealed body does not open: wrong secret, wrong row, or tampered bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("sealed body does not open (secret changed or data tampered with)")]
pub struct Unsealable;

/// Seals `plaintext` bound to `associated`, with a nonce the caller drew from the OS CSPRNG.
/// The result is `nonce || ciphertext || tag`.
pub fn seal(secret: &ServerSecret, associated: &[u8], nonce: [u8; NONCE_BYTES], plaintext: &[u8]) -> Vec<u8> {
    seal_for(KeyPurpose::Outbox, secret, associated, nonce, plaintext)
}

/// Opens what [`seal`] produced with the same secret and associated data.
///
/// # Errors
/// [`Unsealable`] for any other secret, associated data or byte.
pub fn open(secret: &ServerSecret, associated: &[u8], sealed: &[u8]) -> Result<Vec<u8>, Unsealable> {
    open_for(KeyPurpose::Outbox, secret, associated, sealed)
}

/// As [`seal`], under the key of another `purpose` (the signing keys' own), so that nothing
/// sealed for one use opens as another.
pub fn seal_for(
    purpose: KeyPurpose,
    secret: &ServerSecret,
    associated: &[u8],
    nonce: [u8; NONCE_BYTES],
    plaintext: &[u8],
) -> Vec<u8> {
    let cipher = XChaCha20Poly1305::new(&secret.derive(purpose).into());
    let ciphertext = cipher
        .encrypt(XNonce::from_slice(&nonce), Payload { msg: plaintext, aad: associated })
        .expect("XChaCha20-Poly1305 encrypts any message that fits in memory");
    let mut sealed = nonce.to_vec();
    sealed.extend_from_slice(&ciphertext);
    sealed
}

/// Opens what [`seal_for`] produced with the same purpose, secret and associated data.
///
/// # Errors
/// [`Unsealable`] for any other purpose, secret, associated data or byte.
pub fn open_for(
    purpose: KeyPurpose,
    secret: &ServerSecret,
    associated: &[u8],
    sealed: &[u8],
) -> Result<Vec<u8>, Unsealable> {
    if sealed.len() < NONCE_BYTES {
        return Err(Unsealable);
    }
    let (nonce, ciphertext) = sealed.split_at(NONCE_BYTES);
    let cipher = XChaCha20Poly1305::new(&secret.derive(purpose).into());
    cipher.decrypt(XNonce::from_slice(nonce), Payload { msg: ciphertext, aad: associated }).map_err(|_| Unsealable)
}

#[cfg(test)]
mod tests {
    use super::{open, seal, Unsealable};
    use crate::ServerSecret;

    fn secret() -> ServerSecret {
        ServerSecret::new(*b"sealing-secret-sealing-secret-32")
    }

    #[test]
    fn a_sealed_body_opens_only_with_its_secret_and_row() {
        let link = b"https://auth.example.com/api/auth/callback/email?token=abc";
        let sealed = seal(&secret(), b"row-1", [7; 24], link);

        assert!(!sealed.windows(link.len()).any(|w| w == link), "plaintext is not visible");
        assert_eq!(open(&secret(), b"row-1", &sealed).as_deref(), Ok(&link[..]));
        assert_eq!(open(&secret(), b"row-2", &sealed), Err(Unsealable));
        assert_eq!(open(&ServerSecret::new(*b"another-secret-another-secret-32"), b"row-1", &sealed), Err(Unsealable));
        let mut tampered = sealed.clone();
        tampered[30] ^= 1;
        assert_eq!(open(&secret(), b"row-1", &tampered), Err(Unsealable));
        assert_eq!(open(&secret(), b"row-1", &sealed[..10]), Err(Unsealable));
    }

    #[test]
    fn what_is_sealed_for_one_purpose_does_not_open_as_another() {
        use crate::secret::KeyPurpose;
        let sealed = super::seal_for(KeyPurpose::SigningKey, &secret(), b"kid", [5; 24], b"private key");
        assert_eq!(
            super::open_for(KeyPurpose::SigningKey, &secret(), b"kid", &sealed).as_deref(),
            Ok(&b"private key"[..])
        );
        assert_eq!(open(&secret(), b"kid", &sealed), Err(Unsealable));
    }

    #[test]
    fn different_nonces_give_different_ciphertexts() {
        assert_ne!(seal(&secret(), b"r", [1; 24], b"same"), seal(&secret(), b"r", [2; 24], b"same"));
    }
}
