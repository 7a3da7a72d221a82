//! The one payload decoder of every client event (docs/protocol.md §2): no argument or one JSON object,
//! holding exactly the event's fields. Anything else — another JSON type, more than one argument, an unknown
//! field, a missing or mistyped one — is `BAD_REQUEST`, whatever the event.

use std::fmt;

use serde::de::{self, DeserializeOwned, Deserializer, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::error::WsError;

/// Every argument a client sent with an event, in order (the acknowledgement callback is not one of them).
///
/// It deserializes as a tuple, which makes socketioxide's parser hand over the whole argument list instead of
/// only its first element — so an event sent with no argument at all reaches the decoder as an empty list
/// rather than failing inside the parser with "first element not found".
#[derive(Debug, Default, PartialEq)]
pub struct EventArgs(pub Vec<Value>);

impl<'de> de::Deserialize<'de> for EventArgs {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<EventArgs, D::Error> {
        struct ArgsVisitor;
        impl<'de> Visitor<'de> for ArgsVisitor {
            type Value = EventArgs;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("the arguments of a Socket.IO event")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<EventArgs, A::Error> {
                let mut args = Vec::new();
                while let Some(arg) = seq.next_element::<Value>()? {
                    args.push(arg);
                }
                Ok(EventArgs(args))
            }
        }
        deserializer.deserialize_tuple(usize::MAX, ArgsVisitor)
    }
}

/// The payload of an event without fields.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoFields {}

/// Decodes the event's arguments into its payload type `P`.
pub fn decode<P: DeserializeOwned>(args: EventArgs) -> Result<P, WsError> {
    let mut args = args.0;
    let object = match args.len() {
        0 => Map::new(),
        1 => match args.pop() {
            Some(Value::Object(object)) => object,
            Some(other) => {
                return Err(WsError::bad_request(format!(
                    "the payload must be a JSON object (or absent), not {}",
                    kind(&other)
                )));
            }
            None => Map::new(),
        },
        count => {
            return Err(WsError::bad_request(format!(
                "send one payload object, not {count} arguments"
            )));
        }
    };
    let mut unknown = Vec::new();
    let payload = serde_ignored::deserialize(Value::Object(object), |path| {
        unknown.push(format!("`{path}`"));
    })
    .map_err(|err| WsError::bad_request(format!("invalid payload: {err}")))?;
    if unknown.is_empty() {
        Ok(payload)
    } else {
        Err(WsError::bad_request(format!(
            "invalid payload: unknown field {}",
            unknown.join(", ")
        )))
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Debug, serde::Deserialize)]
    struct Ready {
        ready: bool,
    }

    #[derive(Debug, serde::Deserialize)]
    struct Join {
        #[serde(default)]
        options: Option<Value>,
    }

    fn args(values: &[Value]) -> EventArgs {
        EventArgs(values.to_vec())
    }

    #[test]
    fn no_argument_and_an_empty_object_are_the_same() {
        assert!(decode::<NoFields>(args(&[])).is_ok());
        assert!(decode::<NoFields>(args(&[json!({})])).is_ok());
        assert!(decode::<Join>(args(&[])).unwrap().options.is_none());
    }

    #[test]
    fn unknown_fields_other_types_and_extra_arguments_are_bad_requests() {
        for (bad, why) in [
            (args(&[json!({ "x": 1 })]), "unknown field `x`"),
            (args(&[json!(null)]), "not null"),
            (args(&[json!([1])]), "not an array"),
            (args(&[json!("ready")]), "not a string"),
            (args(&[json!({}), json!({})]), "not 2 arguments"),
        ] {
            let err = decode::<NoFields>(bad).unwrap_err();
            assert_eq!(err.code, "BAD_REQUEST");
            assert!(err.message.contains(why), "{}", err.message);
        }
        let err = decode::<Ready>(args(&[json!({ "ready": "yes" })])).unwrap_err();
        assert_eq!(err.code, "BAD_REQUEST");
        let err = decode::<Ready>(args(&[json!({ "ready": true, "extra": 1 })])).unwrap_err();
        assert!(err.message.contains("`extra`"), "{}", err.message);
        assert!(
            decode::<Ready>(args(&[json!({ "ready": true })]))
                .unwrap()
                .ready
        );
    }
}
