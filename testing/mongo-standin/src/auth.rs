//! Users and the server side of SCRAM-SHA-256 (RFC 5802 / RFC 7677, as MongoDB runs it through
//! `saslStart`/`saslContinue`). Only SCRAM-SHA-256 is offered: `hello` lists it in saslSupportedMechs,
//! so the driver never picks SCRAM-SHA-1; a client that asks for another mechanism is refused.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};

use crate::error::{Code, CommandError, CommandResult};

pub const MECHANISM: &str = "SCRAM-SHA-256";
/// MongoDB's default scramSHA256IterationCount.
const ITERATIONS: u32 = 15_000;

/// Which databases a user may use: root everything, an application user its own database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    AnyDatabase,
    Database(String),
}

impl Scope {
    pub fn allows(&self, db: &str) -> bool {
        match self {
            Scope::AnyDatabase => true,
            Scope::Database(own) => own == db,
        }
    }
}

/// A user as the server keeps it: SCRAM keys, never the password.
#[derive(Clone)]
pub struct User {
    pub name: String,
    /// The authentication database (`authSource`).
    pub db: String,
    pub scope: Scope,
    salt: Vec<u8>,
    stored_key: Vec<u8>,
    server_key: Vec<u8>,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{} ({:?})", self.name, self.db, self.scope)
    }
}

fn hmac(key: &[u8], message: &[u8]) -> Vec<u8> {
    // HMAC accepts a key of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

impl User {
    pub fn new(name: &str, db: &str, scope: Scope, password: &str) -> Result<User, String> {
        let prepared = stringprep::saslprep(password)
            .map_err(|err| format!("password of {name}@{db} fails SASLprep: {err}"))?;
        let mut salt = vec![0u8; 28];
        rand::rng().fill_bytes(&mut salt);
        let mut salted = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(prepared.as_bytes(), &salt, ITERATIONS, &mut salted);
        let client_key = hmac(&salted, b"Client Key");
        Ok(User {
            name: name.to_owned(),
            db: db.to_owned(),
            scope,
            salt,
            stored_key: Sha256::digest(&client_key).to_vec(),
            server_key: hmac(&salted, b"Server Key"),
        })
    }
}

/// A conversation between the server-first and the client-final message.
#[derive(Debug, Clone)]
pub struct Conversation {
    pub id: i32,
    user: User,
    gs2_header: String,
    client_first_bare: String,
    server_first: String,
    nonce: String,
    /// Set once the proof was verified but the client did not ask to skip the empty last exchange.
    pub verified: bool,
}

impl Conversation {
    pub fn user(&self) -> &User {
        &self.user
    }
}

fn failed() -> CommandError {
    CommandError::new(Code::AuthenticationFailed, "Authentication failed.")
}

fn malformed(what: &str) -> CommandError {
    CommandError::new(Code::BadValue, format!("malformed SCRAM message: {what}"))
}

/// `saslStart`: parses the client-first message and answers the server-first one. The SCRAM-SHA-1
/// client-first message has the same shape, so an unknown user is found before the mechanism matters.
pub fn start(
    users: &[User],
    db: &str,
    mechanism: &str,
    payload: &[u8],
    id: i32,
) -> CommandResult<(Conversation, Vec<u8>)> {
    let message =
        std::str::from_utf8(payload).map_err(|_| malformed("client-first is not UTF-8"))?;
    // gs2-header: "n,," or "y,," (no channel binding), optionally "n,a=authzid,".
    let mut parts = message.splitn(3, ',');
    let (binding, authzid, bare) = (parts.next(), parts.next(), parts.next());
    let (Some(binding), Some(authzid), Some(bare)) = (binding, authzid, bare) else {
        return Err(malformed("client-first has no gs2 header"));
    };
    if binding != "n" && binding != "y" {
        return Err(CommandError::new(
            Code::BadValue,
            "SCRAM channel binding is not supported",
        ));
    }
    let gs2_header = format!("{binding},{authzid},");
    let mut username = None;
    let mut client_nonce = None;
    for attribute in bare.split(',') {
        if let Some(value) = attribute.strip_prefix("n=") {
            username = Some(value.replace("=2C", ",").replace("=3D", "="));
        } else if let Some(value) = attribute.strip_prefix("r=") {
            client_nonce = Some(value.to_owned());
        } else if attribute.starts_with("m=") {
            return Err(malformed("mandatory extensions are not supported"));
        }
    }
    let (Some(username), Some(client_nonce)) = (username, client_nonce) else {
        return Err(malformed("client-first needs n= and r="));
    };
    let user = users
        .iter()
        .find(|user| user.name == username && user.db == db)
        .ok_or_else(failed)?
        .clone();
    // After the user look-up, as mongod: an unknown user is AuthenticationFailed whatever the mechanism
    // (the driver falls back to SCRAM-SHA-1 when hello listed no mechanism for the user).
    if mechanism != MECHANISM {
        return Err(CommandError::new(
            Code::MechanismUnavailable,
            format!(
                "Received authentication for mechanism {mechanism} which is not enabled (the MongoDB stand-in offers {MECHANISM} only)"
            ),
        ));
    }
    let mut server_nonce = [0u8; 24];
    rand::rng().fill_bytes(&mut server_nonce);
    let nonce = format!("{client_nonce}{}", BASE64.encode(server_nonce));
    let server_first = format!("r={nonce},s={},i={ITERATIONS}", BASE64.encode(&user.salt));
    let payload = server_first.clone().into_bytes();
    Ok((
        Conversation {
            id,
            user,
            gs2_header,
            client_first_bare: bare.to_owned(),
            server_first,
            nonce,
            verified: false,
        },
        payload,
    ))
}

/// `saslContinue` with the client-final message: checks the proof and answers the server signature.
pub fn finish(conversation: &Conversation, payload: &[u8]) -> CommandResult<Vec<u8>> {
    let message =
        std::str::from_utf8(payload).map_err(|_| malformed("client-final is not UTF-8"))?;
    let (without_proof, proof) = message
        .rsplit_once(",p=")
        .ok_or_else(|| malformed("client-final has no proof"))?;
    let mut binding = None;
    let mut nonce = None;
    for attribute in without_proof.split(',') {
        if let Some(value) = attribute.strip_prefix("c=") {
            binding = Some(value);
        } else if let Some(value) = attribute.strip_prefix("r=") {
            nonce = Some(value);
        }
    }
    if binding != Some(BASE64.encode(&conversation.gs2_header).as_str())
        || nonce != Some(conversation.nonce.as_str())
    {
        return Err(failed());
    }
    let proof = BASE64
        .decode(proof)
        .map_err(|_| malformed("proof is not base64"))?;
    let auth_message = format!(
        "{},{},{without_proof}",
        conversation.client_first_bare, conversation.server_first
    );
    let signature = hmac(&conversation.user.stored_key, auth_message.as_bytes());
    if proof.len() != signature.len() {
        return Err(failed());
    }
    let client_key: Vec<u8> = proof.iter().zip(&signature).map(|(a, b)| a ^ b).collect();
    if Sha256::digest(&client_key).as_slice() != conversation.user.stored_key.as_slice() {
        return Err(failed());
    }
    let server_signature = hmac(&conversation.user.server_key, auth_message.as_bytes());
    Ok(format!("v={}", BASE64.encode(server_signature)).into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The client side, written from RFC 5802 independently of the server code above.
    fn client_final(
        password: &str,
        client_first_bare: &str,
        server_first: &str,
    ) -> (String, Vec<u8>) {
        let mut salt = "";
        let mut iterations = 0;
        let mut nonce = "";
        for attribute in server_first.split(',') {
            match attribute.split_at(2) {
                ("s=", value) => salt = value,
                ("i=", value) => iterations = value.parse().unwrap_or(0),
                ("r=", value) => nonce = value,
                _ => {}
            }
        }
        let salt = BASE64.decode(salt).unwrap_or_default();
        let mut salted = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), &salt, iterations, &mut salted);
        let client_key = hmac(&salted, b"Client Key");
        let stored_key = Sha256::digest(&client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
        let signature = hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let server_signature = hmac(&hmac(&salted, b"Server Key"), auth_message.as_bytes());
        (
            format!("{without_proof},p={}", BASE64.encode(proof)),
            server_signature,
        )
    }

    fn exchange(password: &str) -> CommandResult<(Vec<u8>, Vec<u8>)> {
        let users = [User::new(
            "avalon_app",
            "avalon",
            Scope::Database("avalon".to_owned()),
            "s3cret",
        )
        .unwrap_or_else(|err| panic!("{err}"))];
        let bare = "n=avalon_app,r=clientnonce";
        let (conversation, server_first) = start(
            &users,
            "avalon",
            MECHANISM,
            format!("n,,{bare}").as_bytes(),
            1,
        )?;
        let server_first = String::from_utf8(server_first).unwrap_or_default();
        assert!(server_first.starts_with("r=clientnonce"), "{server_first}");
        let (client_final, expected) = client_final(password, bare, &server_first);
        let answer = finish(&conversation, client_final.as_bytes())?;
        Ok((answer, expected))
    }

    #[test]
    fn the_right_password_is_accepted_and_the_server_proves_itself() {
        let (answer, expected) = exchange("s3cret").unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(
            answer,
            format!("v={}", BASE64.encode(expected)).into_bytes()
        );
    }

    #[test]
    fn a_wrong_password_an_unknown_user_and_another_mechanism_are_refused() {
        assert_eq!(
            exchange("wrong").err().map(|err| err.code),
            Some(Code::AuthenticationFailed)
        );
        let users = [User::new("root", "admin", Scope::AnyDatabase, "pw")
            .unwrap_or_else(|err| panic!("{err}"))];
        let unknown = start(&users, "avalon", MECHANISM, b"n,,n=root,r=abc", 1);
        assert_eq!(
            unknown.err().map(|err| err.code),
            Some(Code::AuthenticationFailed),
            "root lives in admin"
        );
        let sha1 = start(&users, "admin", "SCRAM-SHA-1", b"n,,n=root,r=abc", 1);
        assert_eq!(
            sha1.err().map(|err| err.code),
            Some(Code::MechanismUnavailable)
        );
    }
}
