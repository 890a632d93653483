//! Mode's own JSON shapes (spec `mode-api.md` §2–3), read leniently: ids,
//! tokens and counts may come as numbers or strings, booleans as `true` or
//! `"true"`, optional fields may be missing or null, and a collection's
//! `_embedded` may lack its list key (an empty list, as in the captured
//! `"_embedded":{}`). Unknown fields are ignored. Each collection item keeps
//! the vendor's raw object beside its typed reading, for `remote_data`.

use std::collections::HashMap;

use serde::Deserialize;
use serde::de::{self, DeserializeOwned, Deserializer};
use serde_json::{Map, Value};

use crate::error::ConnectorError;

// ---- lenient scalars --------------------------------------------------------

/// A string, or a number written as a string (`"745240"`).
fn string_like<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(de::Error::custom(format!(
            "expected a string or a number, got {other}"
        ))),
    }
}

/// Like [`string_like`], with missing or null as `None`.
fn opt_string_like<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s)),
        Value::Number(n) => Ok(Some(n.to_string())),
        other => Err(de::Error::custom(format!(
            "expected a string or a number, got {other}"
        ))),
    }
}

/// A count: a number or a numeric string; null, missing or anything else
/// (`"unlimited"`) is `None`.
fn opt_count<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    })
}

/// `true`/`false`, also as strings; null or missing is `None`.
fn opt_flag<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(b)),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Value::Number(n) => Ok(Some(n.as_u64().is_some_and(|n| n != 0))),
        other => Err(de::Error::custom(format!(
            "expected a boolean, got {other}"
        ))),
    }
}

// ---- HAL links --------------------------------------------------------------

/// One HAL link. Extra keys (`templated`) are ignored; a list of links (which
/// HAL allows) is read as its first.
#[derive(Debug, Clone, Default)]
pub(crate) struct Link {
    pub href: Option<String>,
}

impl<'de> Deserialize<'de> for Link {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        fn href_of(value: &Value) -> Option<String> {
            match value {
                Value::Object(map) => map.get("href").and_then(Value::as_str).map(str::to_owned),
                Value::Array(items) => items.first().and_then(href_of),
                Value::String(s) => Some(s.clone()),
                _ => None,
            }
        }
        Ok(Self {
            href: href_of(&Value::deserialize(d)?),
        })
    }
}

pub(crate) type Links = HashMap<String, Link>;

pub(crate) fn href<'a>(links: &'a Links, name: &str) -> Option<&'a str> {
    links.get(name).and_then(|l| l.href.as_deref())
}

/// The last path segment of a link (`/api/acme/memberships/5e1f00000002` →
/// `5e1f00000002`), ignoring a query or a trailing slash.
pub(crate) fn last_segment(href: &str) -> Option<&str> {
    let path = href.split(['?', '#']).next().unwrap_or_default();
    path.trim_end_matches('/')
        .rsplit('/')
        .next()
        .filter(|s| !s.is_empty())
}

// ---- resources --------------------------------------------------------------

/// A workspace membership (C5).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Membership {
    #[serde(default, deserialize_with = "opt_flag")]
    pub admin: Option<bool>,
    #[serde(default, deserialize_with = "opt_flag")]
    pub invited: Option<bool>,
    #[serde(default, deserialize_with = "opt_string_like")]
    pub state: Option<String>,
    #[serde(deserialize_with = "string_like")]
    pub member_username: String,
    /// The **user** token: Rollcall's user id.
    #[serde(deserialize_with = "string_like")]
    pub member_token: String,
    #[serde(default, deserialize_with = "opt_string_like")]
    pub activated_at: Option<String>,
    #[serde(default, rename = "_links")]
    pub links: Links,
}

impl Membership {
    /// The membership token (for GET/DELETE `/memberships/{token}`): the last
    /// segment of `_links.self.href` (the object has no `token` field).
    pub fn token(&self) -> Option<&str> {
        href(&self.links, "self").and_then(last_segment)
    }
}

/// A user account (C1/C3), also what `/api/verify` answers a personal token.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Account {
    #[serde(deserialize_with = "string_like")]
    pub username: String,
    #[serde(default, deserialize_with = "opt_string_like")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "opt_string_like")]
    pub token: Option<String>,
    #[serde(default, deserialize_with = "opt_string_like")]
    pub email: Option<String>,
}

/// `/api/verify` for a Workspace API token (C2):
/// `{"workspace","workspace_token","_links"}`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct WorkspaceVerify {
    #[serde(deserialize_with = "string_like")]
    pub workspace_token: String,
}

/// The workspace account (C4); only the caller's membership type matters here.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct WorkspaceAccount {
    #[serde(default, deserialize_with = "opt_string_like")]
    pub membership_type: Option<String>,
}

/// A group (C9).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Group {
    #[serde(deserialize_with = "string_like")]
    pub token: String,
    #[serde(default, deserialize_with = "opt_string_like")]
    pub group_type: Option<String>,
    #[serde(default, deserialize_with = "opt_string_like")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "opt_string_like")]
    pub description: Option<String>,
    #[serde(default, deserialize_with = "opt_string_like")]
    pub state: Option<String>,
    #[serde(default, deserialize_with = "opt_count")]
    pub member_count: Option<u64>,
}

impl Group {
    /// Deleted groups stay readable with `state: soft_deleted` (C11).
    pub fn is_deleted(&self) -> bool {
        self.state
            .as_deref()
            .is_some_and(|s| s.eq_ignore_ascii_case("soft_deleted") || s == "deleted")
    }

    /// Mode's own groups (an "Everyone" kind) are anything but `custom`.
    pub fn is_builtin(&self) -> bool {
        self.group_type
            .as_deref()
            .is_some_and(|t| !t.is_empty() && !t.eq_ignore_ascii_case("custom"))
    }
}

/// A group membership (C14): its own `token` and the user's `member_token`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct GroupMember {
    #[serde(deserialize_with = "string_like")]
    pub token: String,
    #[serde(deserialize_with = "string_like")]
    pub member_token: String,
}

/// The answer to `POST /invites` (C8); only the invitee's link matters.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Invite {
    #[serde(default, rename = "_links")]
    pub links: Links,
}

impl Invite {
    /// The invitee's username, from `_links.invitee.href` (`/api/{username}`).
    pub fn invitee_username(&self) -> Option<&str> {
        href(&self.links, "invitee").and_then(last_segment)
    }
}

/// What a collection item is keyed by, to re-find the last item seen.
pub(crate) trait Keyed {
    fn key(&self) -> &str;
}

impl Keyed for Membership {
    fn key(&self) -> &str {
        &self.member_token
    }
}

impl Keyed for Group {
    fn key(&self) -> &str {
        &self.token
    }
}

impl Keyed for GroupMember {
    fn key(&self) -> &str {
        &self.token
    }
}

// ---- collections --------------------------------------------------------------

/// The optional `pagination` block, in either shape the spec mentions.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub(crate) struct Pagination {
    #[serde(default, deserialize_with = "opt_count")]
    pub page: Option<u64>,
    #[serde(default, deserialize_with = "opt_count")]
    pub per_page: Option<u64>,
    #[serde(default, deserialize_with = "opt_count")]
    pub total_pages: Option<u64>,
}

/// A typed item and the vendor's object it was read from.
#[derive(Debug, Clone)]
pub(crate) struct Item<T> {
    pub raw: Value,
    pub data: T,
}

impl<T: DeserializeOwned> Item<T> {
    pub fn parse(raw: Value) -> Result<Self, serde_json::Error> {
        let data = T::deserialize(&raw)?;
        Ok(Self { raw, data })
    }
}

#[derive(Debug, Deserialize)]
struct Envelope {
    #[serde(default)]
    pagination: Option<Pagination>,
    #[serde(default, rename = "_links")]
    links: Option<Links>,
    #[serde(default, rename = "_embedded")]
    embedded: Option<Map<String, Value>>,
}

/// One answer of a list endpoint.
#[derive(Debug, Clone)]
pub(crate) struct CollectionPage<T> {
    pub items: Vec<Item<T>>,
    pub pagination: Option<Pagination>,
    /// `_links.next_page` is present.
    pub has_next_link: bool,
    /// Its href.
    pub next_link: Option<String>,
}

/// Reads a HAL collection whose items sit under `_embedded.<key>`; a missing
/// `_embedded` or key (or null) is an empty list.
pub(crate) fn parse_collection<T: DeserializeOwned>(
    bytes: &[u8],
    key: &str,
) -> Result<CollectionPage<T>, ConnectorError> {
    let bad = |e: String| {
        ConnectorError::BadResponse(format!("Mode's `{key}` list is not the expected JSON: {e}"))
    };
    let envelope: Envelope = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
    let raw_items = match envelope.embedded.and_then(|mut e| e.remove(key)) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items,
        Some(other) => return Err(bad(format!("`_embedded.{key}` is {other}, not a list"))),
    };
    let items = raw_items
        .into_iter()
        .map(Item::parse)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))?;
    let next_link = envelope
        .links
        .as_ref()
        .and_then(|l| href(l, "next_page"))
        .filter(|h| !h.is_empty())
        .map(str::to_owned);
    Ok(CollectionPage {
        items,
        pagination: envelope.pagination,
        has_next_link: next_link.is_some(),
        next_link,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use serde_json::json;

    #[test]
    fn memberships_accept_numbers_strings_and_missing_fields() {
        let body = json!({
            "_links": {"self": {"href": "/api/acme/memberships"}},
            "_embedded": {"memberships": [
                {"admin": "true", "state": "active", "member_username": "alice",
                 "member_token": 123456789012_u64, "activated_at": null,
                 "_links": {"self": {"href": "/api/acme/memberships/5e1f00000001/"}}},
                {"admin": false, "invited": true, "state": "pending",
                 "member_username": "dave", "member_token": "d00000000004", "_links": {}}
            ]}
        });
        let page: CollectionPage<Membership> =
            parse_collection(&serde_json::to_vec(&body).unwrap(), "memberships").unwrap();
        assert_eq!(page.items.len(), 2);
        let alice = &page.items[0].data;
        assert_eq!(alice.member_token, "123456789012");
        assert_eq!(alice.admin, Some(true));
        assert_eq!(alice.token(), Some("5e1f00000001"));
        assert_eq!(page.items[1].data.token(), None);
        assert_eq!(page.items[1].raw["member_username"], "dave");
        assert!(!page.has_next_link);
    }

    #[test]
    fn empty_embedded_is_an_empty_list() {
        for body in [
            json!({"_links": {"self": {"href": ""}}, "_embedded": {}}),
            json!({"_embedded": {"groups": null}}),
            json!({}),
        ] {
            let page: CollectionPage<Group> =
                parse_collection(&serde_json::to_vec(&body).unwrap(), "groups").unwrap();
            assert!(page.items.is_empty());
        }
    }

    #[test]
    fn groups_read_counts_as_numbers_or_strings() {
        let body = json!({"pagination": {"page": "2", "per_page": 30, "total_pages": 3},
        "_links": {"next_page": {"href": "/api/acme/groups?page=3"}},
        "_embedded": {"groups": [
            {"token": "9f0000000001", "name": "A", "member_count": "12", "group_type": "custom", "state": "active"},
            {"token": 42, "name": "Everyone", "member_count": 3, "group_type": "everyone", "state": "soft_deleted"}
        ]}});
        let page: CollectionPage<Group> =
            parse_collection(&serde_json::to_vec(&body).unwrap(), "groups").unwrap();
        let p = page.pagination.unwrap();
        assert_eq!(
            (p.page, p.per_page, p.total_pages),
            (Some(2), Some(30), Some(3))
        );
        assert!(page.has_next_link);
        assert_eq!(page.items[0].data.member_count, Some(12));
        assert!(!page.items[0].data.is_builtin());
        assert_eq!(page.items[1].data.token, "42");
        assert!(page.items[1].data.is_builtin());
        assert!(page.items[1].data.is_deleted());
    }

    #[test]
    fn malformed_lists_are_bad_responses() {
        for body in [
            &b"{\"data\": [{\"id\": 1,, oops"[..],
            br#"{"_embedded":{"memberships":{"a":1}}}"#,
            br#"{"_embedded":{"memberships":[{"member_username":"x"}]}}"#,
        ] {
            let err = parse_collection::<Membership>(body, "memberships").unwrap_err();
            assert!(matches!(err, ConnectorError::BadResponse(_)), "{err}");
        }
    }

    #[test]
    fn invitee_and_segments() {
        let invite: Invite = serde_json::from_value(json!({
            "email": "carol@acme.example",
            "_links": {"invitee": {"href": "/api/carol"}, "inviter": [{"href": "/api/alice"}]}
        }))
        .unwrap();
        assert_eq!(invite.invitee_username(), Some("carol"));
        assert_eq!(href(&invite.links, "inviter"), Some("/api/alice"));
        assert_eq!(last_segment("/api/acme/memberships/ab?x=1"), Some("ab"));
        assert_eq!(last_segment(""), None);
    }
}

// ---- Discovery API (§4) --------------------------------------------------------

/// One page of `GET /batch/{ws}/members`.
#[derive(Debug, Deserialize)]
pub(crate) struct DiscoveryPage {
    #[serde(default)]
    pub pagination: Option<DiscoveryPagination>,
    #[serde(default)]
    pub members: Vec<DiscoveryMember>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct DiscoveryPagination {
    #[serde(default)]
    pub total_pages: Option<u64>,
}

/// A member's activity: every timestamp the Discovery API keeps.
#[derive(Debug, Deserialize)]
pub(crate) struct DiscoveryMember {
    #[serde(deserialize_with = "string_like")]
    pub member_token: String,
    #[serde(default, deserialize_with = "opt_string_like")]
    pub last_report_created_at: Option<String>,
    #[serde(default, deserialize_with = "opt_string_like")]
    pub last_report_edited_at: Option<String>,
    #[serde(default, deserialize_with = "opt_string_like")]
    pub last_report_viewed_at: Option<String>,
    #[serde(default, deserialize_with = "opt_string_like")]
    pub last_report_run_at: Option<String>,
    #[serde(default, deserialize_with = "opt_string_like")]
    pub last_exploration_created_at: Option<String>,
    #[serde(default, deserialize_with = "opt_string_like")]
    pub last_exploration_updated_at: Option<String>,
    /// A calendar day (`YYYY-MM-DD`).
    #[serde(default, deserialize_with = "opt_string_like")]
    pub last_day_engaged: Option<String>,
}

impl DiscoveryMember {
    /// The latest moment the member is known to have done anything, as
    /// RFC 3339 UTC; a day counts as its last second (the member was active
    /// some time that day). Unreadable values are ignored.
    pub fn last_active_at(&self) -> Option<String> {
        let stamps = [
            &self.last_report_created_at,
            &self.last_report_edited_at,
            &self.last_report_viewed_at,
            &self.last_report_run_at,
            &self.last_exploration_created_at,
            &self.last_exploration_updated_at,
        ];
        let mut latest = stamps
            .into_iter()
            .flatten()
            .filter_map(|s| s.parse::<jiff::Timestamp>().ok())
            .max();
        if let Some(day) = self
            .last_day_engaged
            .as_deref()
            .and_then(|d| d.parse::<jiff::civil::Date>().ok())
            && let Ok(end) = day
                .at(23, 59, 59, 0)
                .to_zoned(jiff::tz::TimeZone::UTC)
                .map(|z| z.timestamp())
        {
            latest = latest.max(Some(end));
        }
        latest.map(|t| t.to_string())
    }
}
