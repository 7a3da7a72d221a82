//! The connection handshake and authentication: hello/isMaster (a standalone server, wire version 21 as
//! MongoDB 7.0, no compression), buildInfo, saslStart/saslContinue and speculative authentication.

use bson::{Binary, Bson, Document, doc, spec::BinarySubtype};

use crate::auth::{self, MECHANISM};
use crate::commands::{Command, Session, Shared};
use crate::error::{Code, CommandError, CommandResult};
use crate::wire::MAX_MESSAGE_SIZE;

/// MongoDB 7.0's wire version; the driver needs at least 8 (4.2).
const MAX_WIRE_VERSION: i32 = 21;
const MAX_BSON_OBJECT_SIZE: i32 = 16 * 1024 * 1024;

pub fn ok() -> Document {
    doc! { "ok": 1.0 }
}

#[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]
pub fn hello(shared: &Shared, session: &mut Session, command: &Command) -> CommandResult<Document> {
    let mut reply = doc! {
        "helloOk": true,
        "ismaster": true,
        "isWritablePrimary": true,
        "maxBsonObjectSize": MAX_BSON_OBJECT_SIZE,
        "maxMessageSizeBytes": MAX_MESSAGE_SIZE as i32,
        "maxWriteBatchSize": 100_000,
        "localTime": bson::DateTime::now(),
        "logicalSessionTimeoutMinutes": 30,
        "connectionId": session.connection_id,
        "minWireVersion": 0,
        "maxWireVersion": MAX_WIRE_VERSION,
        "readOnly": false,
    };
    if command.name == "hello" {
        reply.remove("ismaster");
    } else {
        reply.remove("isWritablePrimary");
    }
    if let Ok(wanted) = command.body.get_str("saslSupportedMechs") {
        let known = wanted.split_once('.').is_some_and(|(db, name)| {
            shared
                .users
                .iter()
                .any(|user| user.db == db && user.name == name)
        });
        if known {
            reply.insert("saslSupportedMechs", vec![MECHANISM]);
        }
    }
    // As mongod: a speculative attempt that cannot start is left out of the reply, and the driver then
    // authenticates the ordinary way (which reports the failure).
    if let Ok(speculative) = command.body.get_document("speculativeAuthenticate")
        && let Ok(db) = speculative.get_str("db")
        && let Ok(first) = start_conversation(shared, session, db, speculative)
    {
        reply.insert("speculativeAuthenticate", first);
    }
    reply.insert("ok", 1.0);
    Ok(reply)
}

pub fn build_info() -> Document {
    doc! {
        "version": "7.0.0",
        "gitVersion": "avalon-mongo-standin",
        "versionArray": [7, 0, 0, 0],
        "modules": [],
        "sysInfo": "deprecated",
        "bits": 64,
        "debug": false,
        "maxBsonObjectSize": MAX_BSON_OBJECT_SIZE,
        "storageEngines": ["in-memory (avalon mongo-standin test fixture: nothing is persisted)"],
        "ok": 1.0,
    }
}

pub fn connection_status(session: &Session) -> Document {
    let users: Vec<Document> = session
        .user
        .iter()
        .map(|user| doc! { "user": &user.name, "db": &user.db })
        .collect();
    doc! { "authInfo": { "authenticatedUsers": users, "authenticatedUserRoles": [] }, "ok": 1.0 }
}

fn payload(body: &Document) -> CommandResult<Vec<u8>> {
    match body.get("payload") {
        Some(Bson::Binary(binary)) => Ok(binary.bytes.clone()),
        Some(Bson::String(text)) => Ok(text.clone().into_bytes()),
        _ => Err(CommandError::bad_value("SASL payload must be binary data")),
    }
}

fn binary(bytes: Vec<u8>) -> Bson {
    Bson::Binary(Binary {
        subtype: BinarySubtype::Generic,
        bytes,
    })
}

/// saslStart's work, shared with speculative authentication in hello.
fn start_conversation(
    shared: &Shared,
    session: &mut Session,
    db: &str,
    body: &Document,
) -> CommandResult<Document> {
    let mechanism = body
        .get_str("mechanism")
        .map_err(|_| CommandError::bad_value("saslStart needs a `mechanism`"))?;
    let skip_empty = body
        .get_document("options")
        .is_ok_and(|options| matches!(options.get("skipEmptyExchange"), Some(Bson::Boolean(true))));
    session.last_conversation_id += 1;
    let id = session.last_conversation_id;
    let (conversation, server_first) =
        auth::start(&shared.users, db, mechanism, &payload(body)?, id).inspect_err(|err| {
            eprintln!(
                "mongo-standin: connection {}: authentication refused: {err}",
                session.connection_id
            );
        })?;
    session.conversation = Some((conversation, skip_empty));
    Ok(doc! { "conversationId": id, "done": false, "payload": binary(server_first), "ok": 1.0 })
}

pub fn sasl_start(
    shared: &Shared,
    session: &mut Session,
    command: &Command,
) -> CommandResult<Document> {
    session.conversation = None;
    start_conversation(shared, session, command.db, command.body)
}

pub fn sasl_continue(session: &mut Session, command: &Command) -> CommandResult<Document> {
    let Some((conversation, skip_empty)) = session.conversation.take() else {
        return Err(CommandError::new(
            Code::ProtocolError,
            "No SASL session state found",
        ));
    };
    let id = crate::commands::number(
        command.body.get("conversationId"),
        "saslContinue",
        "conversationId",
    )?;
    if id != Some(i64::from(conversation.id)) {
        return Err(CommandError::new(
            Code::ProtocolError,
            "Mismatched SASL conversation id",
        ));
    }
    if conversation.verified {
        // The empty last round of a client that did not ask to skip it.
        session.user = Some(conversation.user().clone());
        return Ok(
            doc! { "conversationId": conversation.id, "done": true, "payload": binary(Vec::new()), "ok": 1.0 },
        );
    }
    let server_final = auth::finish(&conversation, &payload(command.body)?).inspect_err(|err| {
        eprintln!(
            "mongo-standin: connection {}: authentication of {}@{} failed: {err}",
            session.connection_id,
            conversation.user().name,
            conversation.user().db
        );
    })?;
    let id = conversation.id;
    if skip_empty {
        session.user = Some(conversation.user().clone());
    } else {
        let mut verified = conversation;
        verified.verified = true;
        session.conversation = Some((verified, false));
    }
    Ok(
        doc! { "conversationId": id, "done": skip_empty, "payload": binary(server_final), "ok": 1.0 },
    )
}
