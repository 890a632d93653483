//! Metabase's answer shapes (spec §4): plain-text messages, `{"errors":…}`
//! maps, request-schema failures with `specific-errors`, and exception maps;
//! plus the request parsing every endpoint shares (bodies, query strings,
//! route ids, paging), done by hand so a bad request never gets axum's own
//! rejection text.

use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value, json};

pub const JSON: &str = "application/json; charset=utf-8";
pub const TEXT: &str = "text/plain";
pub const SCIM_JSON: &str = "application/scim+json";

pub const NOT_FOUND: &str = "Not found.";
pub const FORBIDDEN: &str = "You don't have permissions to do that.";
pub const UNAUTHENTICATED: &str = "Unauthenticated";
pub const NO_ENDPOINT: &str = "API endpoint does not exist.";
pub const INVALID_REQUEST: &str = "Invalid Request.";
pub const LAST_ADMIN: &str = "You cannot remove the last member of the 'Admin' group!";
pub const ALL_USERS_FIXED: &str = "You cannot add or remove users to/from the 'All Users' group.";
pub const GROUP_NAME_TAKEN: &str = "A group with that name already exists.";
pub const INTERNAL_USER: &str = "Not able to modify the internal user";
pub const GROUP_MANAGER_402: &str = "The group manager permissions functionality is only enabled if you have a premium token with the advanced-permissions feature.";
/// The newest membership code's answer for a user or group that does not
/// exist (its tenant check sees `nil` on one side) — spec §3.5 [inference].
pub const TENANT_MISMATCH: &str = "Cannot add non-tenant user to tenant-group or vice versa";

/// A non-success answer in one of Metabase's shapes.
#[derive(Debug, Clone)]
pub enum ApiError {
    /// Rule 1: a status with only a message, sent as `text/plain`.
    Text(StatusCode, String),
    /// Rules 2 and 3: a JSON body (`{"errors":…}` or an exception map).
    Json(StatusCode, Value),
    /// A SCIM error: JSON sent as `application/scim+json`.
    Scim(StatusCode, Value),
}

impl ApiError {
    pub fn text(status: StatusCode, message: impl Into<String>) -> Self {
        Self::Text(status, message.into())
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::text(StatusCode::BAD_REQUEST, message)
    }
    pub fn not_found() -> Self {
        Self::text(StatusCode::NOT_FOUND, NOT_FOUND)
    }
    pub fn forbidden() -> Self {
        Self::text(StatusCode::FORBIDDEN, FORBIDDEN)
    }
    pub fn unauthenticated() -> Self {
        Self::text(StatusCode::UNAUTHORIZED, UNAUTHENTICATED)
    }
    pub fn no_endpoint() -> Self {
        Self::text(StatusCode::NOT_FOUND, NO_ENDPOINT)
    }
    pub fn last_admin() -> Self {
        Self::bad_request(LAST_ADMIN)
    }
    pub fn all_users_fixed() -> Self {
        Self::bad_request(ALL_USERS_FIXED)
    }
    /// `checkp` / `throw-invalid-param-exception`: `{"errors":{field: msg}}`.
    pub fn field(status: StatusCode, field: &str, message: &str) -> Self {
        Self::Json(status, json!({ "errors": { field: message } }))
    }
    /// Rule 3: an exception map (`api/check` with a `{:message …}` map, or a 500).
    pub fn exception(status: StatusCode, message: &str) -> Self {
        Self::Json(status, exception_map(message, None))
    }
    pub fn internal() -> Self {
        Self::exception(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error.")
    }
    /// A SCIM `throw-scim-error`: its ex-data plus the message (the newest
    /// exception middleware passes `schemas`, `detail`, `status` and `message`).
    /// Sent as `application/scim+json` like SCIM successes (spec §10 q9 [inference]).
    pub fn scim(status: StatusCode, detail: &str) -> Self {
        Self::Scim(
            status,
            json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
                "detail": detail,
                "status": status.as_u16(),
                "message": detail,
            }),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            Self::Text(status, message) => text(status, message),
            Self::Json(status, body) => json_response(status, &body),
            Self::Scim(status, body) => scim_response(status, &body),
        }
    }
}

pub type ApiResult = Result<Response, ApiError>;

/// `Throwable->map` of an `ex-info` merged with `{:message …}` (spec §4 rule 3).
pub fn exception_map(message: &str, data: Option<Value>) -> Value {
    let data = data.unwrap_or_else(|| json!({ "message": message }));
    json!({
        "via": [{ "type": "clojure.lang.ExceptionInfo", "message": message, "data": data }],
        "trace": [],
        "cause": message,
        "data": data,
        "message": message,
    })
}

pub fn text(status: StatusCode, body: impl Into<String>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static(TEXT))],
        body.into(),
    )
        .into_response()
}

fn encoded(status: StatusCode, body: &impl Serialize, content_type: &'static str) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (
            status,
            [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
            bytes,
        )
            .into_response(),
        Err(_) => text(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error."),
    }
}

pub fn json_response(status: StatusCode, body: &impl Serialize) -> Response {
    encoded(status, body, JSON)
}

pub fn ok_json(body: &impl Serialize) -> Response {
    json_response(StatusCode::OK, body)
}

pub fn scim_response(status: StatusCode, body: &impl Serialize) -> Response {
    encoded(status, body, SCIM_JSON)
}

pub fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

// ---------------------------------------------------------------------------
// Request bodies and request-schema validation
// ---------------------------------------------------------------------------

/// The JSON body as a map. An empty or `null` body is `{}` (Ring hands the
/// handler `nil`, which destructures as an empty map). Unparseable JSON gets
/// ring-json's own answer [inference: Metabase wraps ring-json's
/// `wrap-json-body`; its default malformed response is this text].
pub fn parse_body(headers: &HeaderMap, bytes: &Bytes) -> Result<Map<String, Value>, ApiError> {
    // ring-json parses only `application/json` or `application/…+json`
    // bodies; anything else reaches the endpoint as no body at all.
    let json_request = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|ct| ct.trim().to_ascii_lowercase())
        .is_some_and(|ct| {
            let mime = ct.split(';').next().unwrap_or_default().trim().to_owned();
            mime.strip_prefix("application/")
                .is_some_and(|sub| sub == "json" || sub.ends_with("+json"))
        });
    if !json_request || bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(Value::Null) => Ok(Map::new()),
        // A body that is JSON but not an object fails the endpoint's `:map`
        // schema at the root [inference: exact humanized shape unverified].
        Ok(other) => Err(ApiError::Json(
            StatusCode::BAD_REQUEST,
            json!({
                "errors": "value must be a map.",
                "specific-errors": [format!("invalid type, received: {}", edn(&other))],
            }),
        )),
        Err(_) => Err(ApiError::bad_request("Malformed JSON in request body.")),
    }
}

/// Clojure's `pr-str` of a decoded JSON value, as in `received: …`.
pub fn edn(value: &Value) -> String {
    match value {
        Value::Null => "nil".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => edn_str(s),
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(edn).collect();
            format!("[{}]", inner.join(" "))
        }
        Value::Object(map) => {
            let inner: Vec<String> = map
                .iter()
                .map(|(k, v)| format!(":{k} {}", edn(v)))
                .collect();
            format!("{{{}}}", inner.join(", "))
        }
    }
}

pub fn edn_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn received(what: &str, value: Option<&Value>) -> String {
    format!(
        "{what}, received: {}",
        value.map_or_else(|| "nil".into(), edn)
    )
}

/// The schema kinds the endpoints use, named after `metabase.util.malli.schema`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `ms/NonBlankString`.
    NonBlank,
    /// `ms/Email`.
    Email,
    /// `ms/PositiveInt`.
    PositiveInt,
    /// `:boolean`.
    Boolean,
    /// `ms/BooleanValue` (`true`, `false`, `"true"`, `"false"`).
    BooleanValue,
    /// `ms/ValidLocale`.
    Locale,
    /// `ms/ValidPassword`.
    Password,
    /// `users.schema/LoginAttributes`.
    LoginAttributes,
    /// `[:sequential ::user-group-membership]`.
    GroupMemberships,
    /// `:string`.
    Str,
}

impl Kind {
    /// The `errors` text (`mu/with-api-error-message`, or malli's description).
    fn describe(self) -> &'static str {
        match self {
            Self::NonBlank => "value must be a non-blank string.",
            Self::Email => "value must be a valid email address.",
            Self::PositiveInt => "value must be an integer greater than zero.",
            // No API message on `:boolean`; malli's describe [inference].
            Self::Boolean => "boolean",
            Self::BooleanValue => "value must be a valid boolean string ('true' or 'false').",
            Self::Locale => {
                "String must be a valid two-letter ISO language or language-country code e.g. 'en' or 'en_US'."
            }
            Self::Password => "password is too common.",
            // [inference] malli's describe of the map-of schema.
            Self::LoginAttributes => {
                "map from <login attribute keys must be a keyword or string, and login attribute keys must not start with `@`> to <anything>"
            }
            // [inference] malli's describe of the sequential schema.
            Self::GroupMemberships => {
                "sequence of map where {:id -> <value must be an integer greater than zero.>, :is_group_manager (optional) -> <boolean>}"
            }
            Self::Str => "string",
        }
    }

    /// `None` when `value` conforms; otherwise the humanized errors.
    fn check(self, value: &Value) -> Option<Value> {
        let v = Some(value);
        let errors: Vec<String> = match self {
            Self::NonBlank => match value {
                Value::String(s) if s.is_empty() => vec![
                    received("should be at least 1 character", v),
                    received("non-blank string", v),
                ],
                Value::String(s) if s.trim().is_empty() => vec![received("non-blank string", v)],
                Value::String(_) => vec![],
                _ => vec![
                    received("should be a string", v),
                    received("non-blank string", v),
                ],
            },
            Self::Email => match value {
                Value::String(s) if is_email(s) => vec![],
                // [inference] spec §10 q8: the exact text is not covered by a test.
                Value::String(_) => vec![received("valid email address", v)],
                _ => vec![received("should be a string", v)],
            },
            Self::PositiveInt => match value.as_u64() {
                Some(n) if n > 0 && value.is_u64() => vec![],
                _ => vec![received("value must be an integer greater than zero.", v)],
            },
            Self::Boolean => match value {
                Value::Bool(_) => vec![],
                _ => vec![received("should be a boolean", v)],
            },
            Self::BooleanValue => match value {
                Value::Bool(_) => vec![],
                Value::String(s) if s == "true" || s == "false" => vec![],
                _ => vec![received(
                    "value must be a valid boolean string ('true' or 'false').",
                    v,
                )],
            },
            Self::Locale => match value {
                Value::String(s) if normalize_locale(s).is_some() => vec![],
                Value::String(s) if !s.trim().is_empty() => vec![received("valid locale", v)],
                _ => return Kind::NonBlank.check(value),
            },
            Self::Password => match value {
                Value::String(s) if password_is_valid(s) => vec![],
                Value::String(_) => vec![received("password is too common.", v)],
                _ => vec![received("should be a string", v)],
            },
            Self::LoginAttributes => match value {
                Value::Object(map) => {
                    let bad: Map<String, Value> = map
                        .keys()
                        .filter(|k| k.starts_with('@'))
                        .map(|k| {
                            (
                                k.clone(),
                                json!([received(
                                    "login attribute keys must not start with `@`",
                                    Some(&Value::String(k.clone()))
                                )]),
                            )
                        })
                        .collect();
                    if bad.is_empty() {
                        vec![]
                    } else {
                        return Some(Value::Object(bad));
                    }
                }
                _ => vec![received("invalid type", v)],
            },
            Self::GroupMemberships => match value {
                Value::Array(items) => {
                    let per_item: Vec<Value> = items.iter().map(check_membership_item).collect();
                    if per_item.iter().all(Value::is_null) {
                        vec![]
                    } else {
                        return Some(Value::Array(per_item));
                    }
                }
                _ => vec![received("invalid type", v)],
            },
            Self::Str => match value {
                Value::String(_) => vec![],
                _ => vec![received("should be a string", v)],
            },
        };
        if errors.is_empty() {
            None
        } else {
            Some(json!(errors))
        }
    }
}

fn check_membership_item(item: &Value) -> Value {
    let Value::Object(map) = item else {
        return json!([received("invalid type", Some(item))]);
    };
    let mut errors = Map::new();
    match map.get("id") {
        None => {
            errors.insert("id".into(), json!([received("missing required key", None)]));
        }
        Some(id) => {
            if let Some(e) = Kind::PositiveInt.check(id) {
                errors.insert("id".into(), e);
            }
        }
    }
    if let Some(flag) = map.get("is_group_manager")
        && let Some(e) = Kind::Boolean.check(flag)
    {
        errors.insert("is_group_manager".into(), e);
    }
    if errors.is_empty() {
        Value::Null
    } else {
        Value::Object(errors)
    }
}

/// How a key appears in an endpoint's body (or query) schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// `[:key Schema]`.
    Required,
    /// `[:key {:optional true} Schema]`: absent is fine, `null` is not.
    Optional,
    /// `[:key {:optional true} [:maybe Schema]]`.
    Nullable,
}

/// Collects request-schema failures the way `decode-and-validate-params` does.
#[derive(Debug, Default)]
pub struct Validator {
    errors: Map<String, Value>,
    specific: Map<String, Value>,
}

impl Validator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks `map[key]`; returns the value when it is present and valid
    /// (`None` for absent, `null`, or invalid).
    pub fn field<'a>(
        &mut self,
        map: &'a Map<String, Value>,
        key: &str,
        kind: Kind,
        presence: Presence,
    ) -> Option<&'a Value> {
        let describe = match presence {
            Presence::Nullable => format!("nullable {}", kind.describe()),
            _ => kind.describe().to_owned(),
        };
        match map.get(key) {
            None if presence == Presence::Required => {
                self.fail(
                    key,
                    describe,
                    json!([received("missing required key", None)]),
                );
                None
            }
            None => None,
            Some(Value::Null) if presence == Presence::Nullable => None,
            Some(value) => match kind.check(value) {
                None => Some(value),
                Some(specific) => {
                    self.fail(key, describe, specific);
                    None
                }
            },
        }
    }

    /// A query parameter: strings decoded by malli's string transformer.
    pub fn query(&mut self, value: Option<&str>, key: &str, kind: Kind) -> Option<Value> {
        let raw = value?;
        let decoded = match kind {
            Kind::PositiveInt => raw
                .parse::<u64>()
                .ok()
                .filter(|_| raw.bytes().all(|b| b.is_ascii_digit()))
                .map_or_else(|| Value::String(raw.to_owned()), Value::from),
            _ => Value::String(raw.to_owned()),
        };
        let mut map = Map::new();
        map.insert(key.to_owned(), decoded);
        self.field(&map, key, kind, Presence::Nullable).cloned()
    }

    pub fn fail(&mut self, key: &str, describe: String, specific: Value) {
        self.errors.insert(key.to_owned(), Value::String(describe));
        self.specific.insert(key.to_owned(), specific);
    }

    pub fn finish(self) -> Result<(), ApiError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Json(
                StatusCode::BAD_REQUEST,
                json!({ "errors": self.errors, "specific-errors": self.specific }),
            ))
        }
    }
}

/// `u/email?`: something@something.tld, no spaces.
pub fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    let Some((host, tld)) = domain.rsplit_once('.') else {
        return false;
    };
    !local.is_empty()
        && !host.is_empty()
        && tld.len() >= 2
        && tld.chars().all(|c| c.is_ascii_alphanumeric())
        && !s.chars().any(char::is_whitespace)
        && !local.contains('@')
}

/// Languages Metabase ships translations for; `available-locale?` also
/// accepts a country variant of one of them (falls back to the language).
const LANGUAGES: &[&str] = &[
    "ar", "bg", "ca", "cs", "da", "de", "el", "en", "es", "fa", "fi", "fr", "he", "hu", "id", "it",
    "ja", "ko", "lv", "ms", "nb", "nl", "pl", "pt", "ro", "ru", "sk", "sq", "sr", "sv", "th", "tr",
    "uk", "vi", "zh",
];

/// `en-US` → `en_US`; `None` when Metabase would not accept the locale.
pub fn normalize_locale(s: &str) -> Option<String> {
    let s = s.trim();
    let (lang, country) = match s.split_once(['-', '_']) {
        Some((l, c)) => (l, Some(c)),
        None => (s, None),
    };
    let lang = lang.to_ascii_lowercase();
    if !LANGUAGES.contains(&lang.as_str()) {
        return None;
    }
    match country {
        None => Some(lang),
        Some(c) if c.len() == 2 && c.chars().all(|ch| ch.is_ascii_alphabetic()) => {
            Some(format!("{lang}_{}", c.to_ascii_uppercase()))
        }
        Some(_) => None,
    }
}

/// A few entries of the common-password list Metabase checks against.
const COMMON_PASSWORDS: &[&str] = &[
    "password1",
    "password123",
    "123456",
    "1234567",
    "12345678",
    "123456789",
    "1234567890",
    "qwerty1",
    "qwerty123",
    "abc123",
    "letmein1",
    "welcome1",
    "passw0rd",
    "iloveyou1",
    "admin123",
    "monkey1",
    "dragon1",
];

/// `MB_PASSWORD_COMPLEXITY=normal`: at least 6 characters, at least one
/// digit, and not on the common-password list.
pub fn password_is_valid(p: &str) -> bool {
    p.chars().count() >= 6
        && p.chars().any(|c| c.is_ascii_digit())
        && !COMMON_PASSWORDS.contains(&p.to_lowercase().as_str())
}

// ---------------------------------------------------------------------------
// Routes, query strings and paging
// ---------------------------------------------------------------------------

/// A numeric route segment. The route regex is `[0-9]+`, so anything else
/// does not match the route at all (`API endpoint does not exist.`); a
/// number that is not a positive int fails the route-params schema.
pub fn route_id(raw: Option<&str>, name: &str) -> Result<u32, ApiError> {
    let raw = raw.unwrap_or_default();
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::no_endpoint());
    }
    match raw.parse::<u64>() {
        Ok(0) => {
            let mut v = Validator::new();
            v.fail(
                name,
                Kind::PositiveInt.describe().to_owned(),
                json!([received(
                    "value must be an integer greater than zero.",
                    Some(&json!(0))
                )]),
            );
            v.finish().map(|()| 0)
        }
        // Larger than any id we hand out: valid for the schema, found nowhere.
        Ok(n) => Ok(u32::try_from(n).unwrap_or(u32::MAX)),
        Err(_) => Ok(u32::MAX),
    }
}

/// The route's path parameters, or `None` when they do not decode (bad
/// percent-escapes): such a path matches no Metabase route, which the
/// handler answers after authenticating, as the router would.
pub struct RawPath(pub Option<Vec<String>>);

impl RawPath {
    pub fn get(&self, i: usize) -> Option<&str> {
        self.0.as_ref().and_then(|v| v.get(i)).map(String::as_str)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RawPath {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(
            Path::<Vec<String>>::from_request_parts(parts, state)
                .await
                .ok()
                .map(|Path(v)| v),
        ))
    }
}

/// Decoded `key=value` pairs of a raw query string.
#[derive(Debug, Default, Clone)]
pub struct QueryParams(Vec<(String, String)>);

impl QueryParams {
    pub fn parse(raw: Option<&str>) -> Self {
        let Some(raw) = raw else {
            return Self::default();
        };
        Self(
            raw.split('&')
                .filter(|pair| !pair.is_empty())
                .map(|pair| {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    (percent_decode(k), percent_decode(v))
                })
                .collect(),
        )
    }

    /// The first value of `key` (Ring keeps a vector for repeats; the
    /// endpoints here read one).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// `application/x-www-form-urlencoded` decoding; bad escapes stay literal.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Paging as the offset-paging middleware decides it (spec §5): nothing
/// unless `limit` or `offset` parses; then a missing limit is 50 and a
/// missing offset 0. Values go through `parse-long`, so junk is absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    pub limit: Option<u64>,
    pub offset: Option<u64>,
}

impl Paging {
    pub fn from_query(q: &QueryParams) -> Self {
        let limit = q.get("limit").and_then(parse_long);
        let offset = q.get("offset").and_then(parse_long);
        if limit.is_none() && offset.is_none() {
            Self {
                limit: None,
                offset: None,
            }
        } else {
            Self {
                limit: Some(limit.unwrap_or(50)),
                offset: Some(offset.unwrap_or(0)),
            }
        }
    }

    pub fn skip(&self) -> usize {
        self.offset
            .map_or(0, |o| usize::try_from(o).unwrap_or(usize::MAX))
    }

    pub fn take(&self) -> usize {
        self.limit
            .map_or(usize::MAX, |l| usize::try_from(l).unwrap_or(usize::MAX))
    }
}

/// Clojure's `parse-long`: an optional sign and digits. A negative value
/// would make the database refuse the query; we treat it as absent so that
/// bad input never becomes a 500 [inference].
fn parse_long(s: &str) -> Option<u64> {
    let digits = s.strip_prefix('+').unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits
        .parse::<u64>()
        .ok()
        .filter(|n| i64::try_from(*n).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edn_prints_like_pr_str() {
        assert_eq!(edn(&Value::Null), "nil");
        assert_eq!(edn(&json!("a\"b")), "\"a\\\"b\"");
        assert_eq!(edn(&json!([1, "x"])), "[1 \"x\"]");
        assert_eq!(edn(&json!({"a": 1})), "{:a 1}");
    }

    #[test]
    fn paging_follows_the_middleware() {
        let p = |q: &str| Paging::from_query(&QueryParams::parse(Some(q)));
        assert_eq!(
            p(""),
            Paging {
                limit: None,
                offset: None
            }
        );
        assert_eq!(
            p("limit=2"),
            Paging {
                limit: Some(2),
                offset: Some(0)
            }
        );
        assert_eq!(
            p("offset=1"),
            Paging {
                limit: Some(50),
                offset: Some(1)
            }
        );
        assert_eq!(
            p("limit=abc"),
            Paging {
                limit: None,
                offset: None
            }
        );
        assert_eq!(
            p("limit=abc&offset=5"),
            Paging {
                limit: Some(50),
                offset: Some(5)
            }
        );
        assert_eq!(
            p("limit=-3"),
            Paging {
                limit: None,
                offset: None
            }
        );
    }

    #[test]
    fn locales_normalize() {
        assert_eq!(normalize_locale("en-US").as_deref(), Some("en_US"));
        assert_eq!(normalize_locale("pt_br").as_deref(), Some("pt_BR"));
        assert_eq!(normalize_locale("de").as_deref(), Some("de"));
        assert_eq!(normalize_locale("xx"), None);
        assert_eq!(normalize_locale("en_USA"), None);
    }

    #[test]
    fn passwords_follow_normal_complexity() {
        assert!(password_is_valid("n3w-pass"));
        assert!(!password_is_valid("abc"));
        assert!(!password_is_valid("abcdefgh"));
        assert!(!password_is_valid("password1"));
    }

    #[test]
    fn percent_decoding_handles_edges() {
        assert_eq!(percent_decode("a%20b+c"), "a b c");
        assert_eq!(percent_decode("%4"), "%4");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert_eq!(
            percent_decode("%22bob%40example.com%22"),
            "\"bob@example.com\""
        );
    }

    #[test]
    fn emails() {
        assert!(is_email("bob@example.com"));
        assert!(!is_email("bob"));
        assert!(!is_email("bob@localhost"));
        assert!(!is_email("bo b@example.com"));
    }
}
