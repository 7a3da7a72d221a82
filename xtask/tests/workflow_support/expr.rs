//! GitHub Actions expressions (`${{ … }}` and `if:`), the subset the repository's workflows use, with
//! GitHub's rules: `&&`/`||` yield an operand, `==` on strings ignores case, a missing property is null,
//! null/false/0/'' are falsy, and values are formatted into strings as GitHub formats them.
//! https://docs.github.com/en/actions/reference/workflows-and-actions/expressions

use serde_json::Value;

/// What the status functions answer for the step or job being decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    /// A step before this one (or a needed job) failed.
    pub failed: bool,
}

/// Evaluates one expression (without the `${{ }}`) against `context`
/// (`{"github": …, "env": …, "steps": …, "needs": …, "inputs": …, "secrets": …, "vars": …}`).
pub fn eval(expression: &str, context: &Value, status: Status) -> Result<Value, String> {
    let tokens = tokenize(expression)?;
    let mut parser = Parser {
        tokens,
        at: 0,
        context,
        status,
    };
    let value = parser.or()?;
    if parser.at != parser.tokens.len() {
        return Err(format!(
            "unexpected {:?} in `{expression}`",
            parser.tokens[parser.at]
        ));
    }
    Ok(value)
}

/// Whether an `if:` holds. Without a status function GitHub prefixes `success() &&`.
pub fn condition(expression: &str, context: &Value, status: Status) -> Result<bool, String> {
    let text = expression.trim();
    let text = text
        .strip_prefix("${{")
        .and_then(|t| t.strip_suffix("}}"))
        .unwrap_or(text);
    let uses_status = ["success()", "failure()", "always()", "cancelled()"]
        .iter()
        .any(|f| text.contains(f));
    let value = eval(text, context, status)?;
    Ok(truthy(&value) && (uses_status || !status.failed))
}

/// Replaces every `${{ … }}` in `text` with its value formatted as GitHub does.
pub fn substitute(text: &str, context: &Value, status: Status) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 3..];
        let end = after
            .find("}}")
            .ok_or_else(|| format!("unterminated expression in {text:?}"))?;
        out.push_str(&to_text(&eval(&after[..end], context, status)?));
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

pub fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0 && !f.is_nan()),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

pub fn to_text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn to_number(value: &Value) -> f64 {
    match value {
        Value::Null => 0.0,
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
        Value::String(s) if s.trim().is_empty() => 0.0,
        Value::String(s) => s.trim().parse().unwrap_or(f64::NAN),
        _ => f64::NAN,
    }
}

fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(x), Value::String(y)) => x.eq_ignore_ascii_case(y),
        (Value::Null, Value::Null) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Array(_) | Value::Object(_), _) | (_, Value::Array(_) | Value::Object(_)) => a == b,
        _ => to_number(a) == to_number(b),
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Str(String),
    Num(f64),
    Op(&'static str),
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '\'' {
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err(format!("unterminated string in `{text}`")),
                    Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                        s.push('\'');
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(ch) => {
                        s.push(*ch);
                        i += 1;
                    }
                }
            }
            tokens.push(Token::Str(s));
        } else if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            let s: String = chars[start..i].iter().collect();
            tokens.push(Token::Num(
                s.parse().map_err(|_| format!("bad number {s}"))?,
            ));
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == '-')
            {
                i += 1;
            }
            tokens.push(Token::Ident(chars[start..i].iter().collect()));
        } else {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            let op = match two.as_str() {
                "==" => Some("=="),
                "!=" => Some("!="),
                "&&" => Some("&&"),
                "||" => Some("||"),
                _ => None,
            };
            if let Some(op) = op {
                tokens.push(Token::Op(op));
                i += 2;
                continue;
            }
            let op = match c {
                '!' => "!",
                '(' => "(",
                ')' => ")",
                '.' => ".",
                ',' => ",",
                '[' => "[",
                ']' => "]",
                _ => return Err(format!("unexpected {c:?} in `{text}`")),
            };
            tokens.push(Token::Op(op));
            i += 1;
        }
    }
    Ok(tokens)
}

struct Parser<'a> {
    tokens: Vec<Token>,
    at: usize,
    context: &'a Value,
    status: Status,
}

impl Parser<'_> {
    fn peek_op(&self, op: &str) -> bool {
        matches!(self.tokens.get(self.at), Some(Token::Op(o)) if *o == op)
    }

    fn expect_op(&mut self, op: &str) -> Result<(), String> {
        if self.peek_op(op) {
            self.at += 1;
            Ok(())
        } else {
            Err(format!(
                "expected `{op}`, found {:?}",
                self.tokens.get(self.at)
            ))
        }
    }

    fn or(&mut self) -> Result<Value, String> {
        let mut left = self.and()?;
        while self.peek_op("||") {
            self.at += 1;
            let right = self.and()?;
            if !truthy(&left) {
                left = right;
            }
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Value, String> {
        let mut left = self.comparison()?;
        while self.peek_op("&&") {
            self.at += 1;
            let right = self.comparison()?;
            if truthy(&left) {
                left = right;
            }
        }
        Ok(left)
    }

    fn comparison(&mut self) -> Result<Value, String> {
        let left = self.unary()?;
        for op in ["==", "!="] {
            if self.peek_op(op) {
                self.at += 1;
                let right = self.unary()?;
                let same = equal(&left, &right);
                return Ok(Value::Bool(if op == "==" { same } else { !same }));
            }
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Value, String> {
        if self.peek_op("!") {
            self.at += 1;
            return Ok(Value::Bool(!truthy(&self.unary()?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Value, String> {
        let token = self
            .tokens
            .get(self.at)
            .cloned()
            .ok_or("unexpected end of expression")?;
        self.at += 1;
        match token {
            Token::Op("(") => {
                let value = self.or()?;
                self.expect_op(")")?;
                Ok(value)
            }
            Token::Str(s) => Ok(Value::String(s)),
            Token::Num(n) => Ok(serde_json::json!(n)),
            Token::Ident(name) if self.peek_op("(") => self.call(&name),
            Token::Ident(name) => match name.as_str() {
                "true" => Ok(Value::Bool(true)),
                "false" => Ok(Value::Bool(false)),
                "null" => Ok(Value::Null),
                _ => self.path(self.context.get(&name).cloned().unwrap_or(Value::Null)),
            },
            other => Err(format!("unexpected {other:?}")),
        }
    }

    fn path(&mut self, mut value: Value) -> Result<Value, String> {
        loop {
            if self.peek_op(".") {
                self.at += 1;
                let Some(Token::Ident(key)) = self.tokens.get(self.at).cloned() else {
                    return Err("expected a property name after `.`".to_owned());
                };
                self.at += 1;
                value = value.get(&key).cloned().unwrap_or(Value::Null);
            } else if self.peek_op("[") {
                self.at += 1;
                let key = self.or()?;
                self.expect_op("]")?;
                value = match &key {
                    Value::String(k) => value.get(k).cloned(),
                    Value::Number(n) => n.as_f64().and_then(|i| value.get(i as usize)).cloned(),
                    _ => None,
                }
                .unwrap_or(Value::Null);
            } else {
                return Ok(value);
            }
        }
    }

    fn call(&mut self, name: &str) -> Result<Value, String> {
        self.expect_op("(")?;
        let mut args = Vec::new();
        if !self.peek_op(")") {
            loop {
                args.push(self.or()?);
                if self.peek_op(",") {
                    self.at += 1;
                } else {
                    break;
                }
            }
        }
        self.expect_op(")")?;
        let text = |i: usize| args.get(i).map(to_text).unwrap_or_default();
        Ok(match name {
            "success" => Value::Bool(!self.status.failed),
            "failure" => Value::Bool(self.status.failed),
            "always" => Value::Bool(true),
            "cancelled" => Value::Bool(false),
            "format" => {
                let mut out = text(0);
                for i in 1..args.len() {
                    out = out.replace(&format!("{{{}}}", i - 1), &text(i));
                }
                Value::String(out)
            }
            "contains" => Value::Bool(match args.first() {
                Some(Value::Array(items)) => items.iter().any(|item| equal(item, &args[1])),
                _ => text(0).to_lowercase().contains(&text(1).to_lowercase()),
            }),
            "startsWith" => {
                Value::Bool(text(0).to_lowercase().starts_with(&text(1).to_lowercase()))
            }
            "endsWith" => Value::Bool(text(0).to_lowercase().ends_with(&text(1).to_lowercase())),
            other => return Err(format!("function {other}() is not supported by the replay")),
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const OK: Status = Status { failed: false };
    const FAILED: Status = Status { failed: true };

    fn context() -> Value {
        json!({
            "github": {"event_name": "workflow_run", "repository_owner": "octo",
                       "event": {"workflow_run": {"conclusion": "success", "id": 7}}},
            "vars": {"EMPTY": ""},
            "steps": {"before": {"outcome": "success", "outputs": {"live_version": "1.0.0"}}},
            "env": {"VERSION": "1.1.0"},
            "needs": {"resolve": {"outputs": {"released": "true"}}}
        })
    }

    #[test]
    fn github_semantics() {
        let c = context();
        assert_eq!(
            eval("github.event_name == 'workflow_dispatch' || github.event.workflow_run.conclusion == 'success'", &c, OK).unwrap(),
            json!(true)
        );
        assert_eq!(
            substitute(
                "${{ vars.X || format('ghcr.io/{0}', github.repository_owner) }}",
                &c,
                OK
            )
            .unwrap(),
            "ghcr.io/octo"
        );
        assert_eq!(
            substitute(
                "${{ github.event_name == 'workflow_run' && 'a.json' || '' }}",
                &c,
                OK
            )
            .unwrap(),
            "a.json"
        );
        assert_eq!(substitute("x${{ inputs.version }}y", &c, OK).unwrap(), "xy");
        assert!(condition("steps.before.outputs.live_version != env.VERSION", &c, OK).unwrap());
        assert!(
            !condition(
                "steps.before.outputs.live_version != env.VERSION",
                &c,
                FAILED
            )
            .unwrap()
        );
        assert!(condition("failure() && steps.before.outcome == 'success'", &c, FAILED).unwrap());
        assert!(!condition("failure() && steps.before.outcome == 'success'", &c, OK).unwrap());
        assert!(condition("needs.resolve.outputs.released == 'TRUE'", &c, OK).unwrap());
        assert!(condition("always()", &c, FAILED).unwrap());
        assert!(!condition("vars.EMPTY", &c, OK).unwrap());
        assert!(eval("nosuch(1)", &c, OK).is_err());
    }
}
