//! Routing a command to its handler, with access control: without a user the server is open (as
//! mongod without `--auth`); with users, only the handshake and `ping` work before authentication, and
//! a user reaches only the databases of its scope. A command the stand-in does not implement is
//! CommandNotFound (59), never a silent success.

use std::sync::{Mutex, MutexGuard, PoisonError};

use bson::{Bson, Document};

use crate::auth::{Conversation, User};
use crate::cursor::Cursors;
use crate::error::{Code, CommandError, CommandResult};
use crate::store::Store;
use crate::{admin, crud, handshake};

/// Everything the connections share. One lock: each command sees and leaves a consistent store, so
/// concurrent upserts and findAndModify calls serialise as on a single mongod document lock.
pub struct Shared {
    pub users: Vec<User>,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
pub struct State {
    pub store: Store,
    pub cursors: Cursors,
}

impl Shared {
    pub fn new(users: Vec<User>) -> Shared {
        Shared {
            users,
            state: Mutex::new(State::default()),
        }
    }

    /// A panic in one command must not wedge every later one: the data is still consistent because
    /// each command writes only after all its checks passed.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn access_control(&self) -> bool {
        !self.users.is_empty()
    }
}

/// One client connection's state.
#[derive(Debug, Default)]
pub struct Session {
    pub connection_id: i32,
    pub user: Option<User>,
    /// An unfinished SCRAM conversation and whether the client asked to skip the empty last round.
    pub conversation: Option<(Conversation, bool)>,
    pub last_conversation_id: i32,
}

impl Session {
    pub fn new(connection_id: i32) -> Session {
        Session {
            connection_id,
            ..Session::default()
        }
    }

    pub fn user_name(&self) -> Option<&str> {
        self.user.as_ref().map(|user| user.name.as_str())
    }
}

/// Commands that work before authentication (mongod's list for its handshake and health checks).
const OPEN_COMMANDS: &[&str] = &[
    "hello",
    "isMaster",
    "ismaster",
    "ping",
    "buildInfo",
    "buildinfo",
    "saslStart",
    "saslContinue",
    "endSessions",
    "logout",
    "connectionStatus",
];

/// Runs one command and returns its reply (an error reply on failure).
pub fn run(shared: &Shared, session: &mut Session, body: &Document) -> Document {
    match dispatch(shared, session, body) {
        Ok(reply) => reply,
        Err(error) => error.reply(),
    }
}

fn dispatch(shared: &Shared, session: &mut Session, body: &Document) -> CommandResult<Document> {
    let name = body
        .keys()
        .next()
        .ok_or_else(|| CommandError::new(Code::FailedToParse, "empty command"))?
        .clone();
    let db = body
        .get_str("$db")
        .map_err(|_| {
            CommandError::new(
                Code::FailedToParse,
                "OP_MSG requests require a $db argument",
            )
        })?
        .to_owned();
    check_name(&db, "database")?;
    if body.contains_key("txnNumber") || body.contains_key("startTransaction") {
        return Err(CommandError::new(
            Code::IllegalOperation,
            "Transaction numbers are only allowed on a replica set member or mongos",
        ));
    }
    if shared.access_control() && !OPEN_COMMANDS.contains(&name.as_str()) {
        authorize(session, &name, &db)?;
    }
    let command = Command {
        name: &name,
        db: &db,
        body,
    };
    match name.as_str() {
        "hello" | "isMaster" | "ismaster" => handshake::hello(shared, session, &command),
        "ping" => Ok(handshake::ok()),
        "buildInfo" | "buildinfo" => Ok(handshake::build_info()),
        "saslStart" => handshake::sasl_start(shared, session, &command),
        "saslContinue" => handshake::sasl_continue(session, &command),
        "endSessions" => Ok(handshake::ok()),
        "logout" => {
            session.user = None;
            Ok(handshake::ok())
        }
        "connectionStatus" => Ok(handshake::connection_status(session)),
        "find" => crud::find(shared, session, &command),
        "getMore" => crud::get_more(shared, session, &command),
        "killCursors" => crud::kill_cursors(shared, &command),
        "insert" => crud::insert(shared, &command),
        "update" => crud::update(shared, &command),
        "delete" => crud::delete(shared, &command),
        "findAndModify" | "findandmodify" => crud::find_and_modify(shared, &command),
        "count" => crud::count(shared, &command),
        "aggregate" => crud::aggregate(shared, session, &command),
        "createIndexes" => admin::create_indexes(shared, &command),
        "listIndexes" => admin::list_indexes(shared, session, &command),
        "create" => admin::create(shared, &command),
        "drop" => admin::drop(shared, &command),
        "dropDatabase" => admin::drop_database(shared, &command),
        "listCollections" => admin::list_collections(shared, session, &command),
        "listDatabases" => admin::list_databases(shared, &command),
        other => Err(CommandError::new(
            Code::CommandNotFound,
            format!(
                "no such command: '{other}' (the avalon MongoDB stand-in implements only what the API's store uses; see testing/mongo-standin/README.md)"
            ),
        )),
    }
}

fn authorize(session: &Session, name: &str, db: &str) -> CommandResult<()> {
    let Some(user) = &session.user else {
        return Err(CommandError::new(
            Code::Unauthorized,
            format!("Command {name} requires authentication"),
        ));
    };
    // listDatabases lives in admin but only lists; mongod lets every user run it (authorizedDatabases).
    if user.scope.allows(db) || name == "listDatabases" {
        Ok(())
    } else {
        Err(CommandError::new(
            Code::Unauthorized,
            format!("not authorized on {db} to execute command {{ {name}: ... }}"),
        ))
    }
}

/// A command being run: its name, database and whole body.
pub struct Command<'a> {
    pub name: &'a str,
    pub db: &'a str,
    pub body: &'a Document,
}

impl Command<'_> {
    /// The collection named by the command's first field, checked.
    pub fn collection(&self) -> CommandResult<&str> {
        let collection = self.body.get_str(self.name).map_err(|_| {
            CommandError::new(
                Code::InvalidNamespace,
                format!(
                    "collection name has invalid type {}",
                    self.body
                        .get(self.name)
                        .map_or("missing", crate::update::type_name)
                ),
            )
        })?;
        check_name(collection, "collection")?;
        Ok(collection)
    }

    pub fn ns(&self) -> CommandResult<String> {
        Ok(format!("{}.{}", self.db, self.collection()?))
    }

    pub fn document(&self, field: &str) -> CommandResult<Option<&Document>> {
        match self.body.get(field) {
            None | Some(Bson::Null) => Ok(None),
            Some(Bson::Document(doc)) => Ok(Some(doc)),
            Some(other) => Err(CommandError::new(
                Code::TypeMismatch,
                format!(
                    "BSON field '{}.{field}' is the wrong type '{}', expected type 'object'",
                    self.name,
                    crate::update::type_name(other)
                ),
            )),
        }
    }

    pub fn array(&self, field: &str) -> CommandResult<&Vec<Bson>> {
        match self.body.get(field) {
            Some(Bson::Array(items)) => Ok(items),
            other => Err(CommandError::new(
                Code::TypeMismatch,
                format!(
                    "BSON field '{}.{field}' is {}, expected type 'array'",
                    self.name,
                    other.map_or("missing", crate::update::type_name)
                ),
            )),
        }
    }

    pub fn flag(&self, field: &str) -> bool {
        matches!(self.body.get(field), Some(Bson::Boolean(true)))
    }

    /// A non-negative integer field (any numeric type), `None` when absent.
    pub fn count(&self, field: &str) -> CommandResult<Option<i64>> {
        number(self.body.get(field), self.name, field)
    }

    /// Options the stand-in cannot honour are refused by name rather than ignored.
    pub fn refuse(&self, fields: &[&str]) -> CommandResult<()> {
        match fields.iter().find(|field| self.body.contains_key(**field)) {
            Some(field) => Err(CommandError::bad_value(format!(
                "the MongoDB stand-in does not support `{field}` in {}",
                self.name
            ))),
            None => Ok(()),
        }
    }
}

#[allow(clippy::cast_possible_truncation)]
pub fn number(value: Option<&Bson>, command: &str, field: &str) -> CommandResult<Option<i64>> {
    match value {
        None | Some(Bson::Null) => Ok(None),
        Some(Bson::Int32(n)) => Ok(Some(i64::from(*n))),
        Some(Bson::Int64(n)) => Ok(Some(*n)),
        Some(Bson::Double(n)) if n.fract() == 0.0 => Ok(Some(*n as i64)),
        Some(other) => Err(CommandError::new(
            Code::TypeMismatch,
            format!(
                "BSON field '{command}.{field}' is the wrong type '{}'",
                crate::update::type_name(other)
            ),
        )),
    }
}

/// Database and collection names as mongod accepts them.
fn check_name(name: &str, what: &str) -> CommandResult<()> {
    let forbidden: &[char] = if what == "database" {
        &['/', '\\', '.', ' ', '"', '$', '\0']
    } else {
        &['$', '\0']
    };
    if name.is_empty()
        || name.contains(forbidden)
        || (what == "collection" && name.starts_with("system."))
    {
        return Err(CommandError::new(
            Code::InvalidNamespace,
            format!("Invalid {what} name: '{name}'"),
        ));
    }
    Ok(())
}
