//! Mode's JSON shapes (spec §3 and checklist C1–C17), written with typed
//! structs so the field names, order and JSON types are fixed in one place.
//! Link hrefs are relative paths, non-templated links carry only `href`
//! (as in the captured datahub fixtures), and lists are serialised lazily
//! so a big list never exists twice in memory.

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

use rollcall_core::clock::rfc3339_from_millis;

use crate::store::{DAY_MS, MemberState, NO_USER, Store};
use crate::tokens::{Kind, hex12, mix};

#[derive(Debug, Serialize)]
pub(crate) struct Link {
    pub href: String,
}

pub(crate) fn link(href: String) -> Link {
    Link { href }
}

#[derive(Debug, Serialize)]
pub(crate) struct TemplatedLink {
    pub templated: bool,
    pub href: String,
}

// ---- users and the workspace account -----------------------------------

#[derive(Debug, Serialize)]
pub(crate) struct UserJson {
    username: String,
    name: String,
    id: u64,
    token: String,
    email: String,
    dataset_size_limit_mb: u32,
    query_run_size_limit_mb: u32,
    email_verified: bool,
    avatar: Avatar,
    user: bool,
    space_count: u32,
    data_source_count: u32,
    organizations_count: u32,
    created_at: String,
    #[serde(rename = "_links")]
    links: UserLinks,
}

#[derive(Debug, Serialize)]
struct Avatar {
    initials: String,
    seed: String,
    color_class: String,
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Debug, Serialize)]
struct UserLinks {
    #[serde(rename = "self")]
    this: Link,
    web: Link,
    organizations: Link,
}

pub(crate) fn user_json(store: &Store, i: u32) -> UserJson {
    let username = store.username(i).into_owned();
    let name = store.display_name(i).into_owned();
    let token = hex12(store.user_token(i));
    let initials: String = name
        .split_whitespace()
        .take(2)
        .filter_map(|w| w.chars().next())
        .flat_map(char::to_uppercase)
        .collect();
    let user = store.user(i);
    UserJson {
        id: store.user_id(i),
        email: store.email(i).into_owned(),
        dataset_size_limit_mb: 10,
        query_run_size_limit_mb: 1000,
        email_verified: user.is_some_and(|u| u.email_verified),
        avatar: Avatar {
            initials,
            color_class: format!("mode-avatar-color-{}", store.user_token(i) % 12 + 1),
            seed: token.clone(),
            kind: "initials",
        },
        user: true,
        space_count: 0,
        data_source_count: 0,
        organizations_count: u32::from(store.is_active_member(i)),
        created_at: rfc3339_from_millis(user.map_or(0, |u| u.created_ms)),
        links: UserLinks {
            this: link(format!("/api/{username}")),
            web: link(format!("/{username}")),
            organizations: link(format!("/api/{username}/organizations")),
        },
        username,
        name,
        token,
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct WorkspaceJson {
    username: String,
    name: String,
    id: u64,
    token: String,
    user: bool,
    avatar: WorkspaceAvatar,
    dataset_size_limit_mb: u32,
    query_run_size_limit_mb: u32,
    membership_type: &'static str,
    plan_code: &'static str,
    trial_state: &'static str,
    authorized_domains: Vec<String>,
    /// [GUESS] the spec types it as a string.
    scim_enabled: &'static str,
    created_at: String,
    #[serde(rename = "_links")]
    links: WorkspaceLinks,
}

#[derive(Debug, Serialize)]
struct WorkspaceAvatar {
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Debug, Serialize)]
struct WorkspaceLinks {
    #[serde(rename = "self")]
    this: Link,
    memberships: Link,
    groups: Link,
    web_groups: Link,
}

/// `membership_type` is the caller's own type in the workspace ([INFERRED]).
pub(crate) fn workspace_json(store: &Store, membership_type: &'static str) -> WorkspaceJson {
    let ws = &store.workspace;
    let name = &ws.username;
    WorkspaceJson {
        username: name.clone(),
        name: ws.name.clone(),
        id: ws.id,
        token: hex12(ws.token),
        user: false,
        avatar: WorkspaceAvatar { kind: "initials" },
        dataset_size_limit_mb: 10,
        query_run_size_limit_mb: 1000,
        membership_type,
        plan_code: "plus",
        trial_state: "expired",
        authorized_domains: vec![ws.domain.clone()],
        scim_enabled: "false",
        created_at: rfc3339_from_millis(ws.created_ms),
        links: WorkspaceLinks {
            this: link(format!("/api/{name}")),
            memberships: link(format!("/api/{name}/memberships")),
            groups: link(format!("/api/{name}/groups")),
            web_groups: link(format!("/organizations/{name}/groups")),
        },
    }
}

/// C2 for a Workspace API token: the datahub fixture's shape.
#[derive(Debug, Serialize)]
pub(crate) struct VerifyJson {
    workspace: String,
    workspace_token: String,
    #[serde(rename = "_links")]
    links: SelfLink,
}

#[derive(Debug, Serialize)]
pub(crate) struct SelfLink {
    #[serde(rename = "self")]
    this: Link,
}

pub(crate) fn verify_json(store: &Store) -> VerifyJson {
    let ws = &store.workspace;
    VerifyJson {
        workspace: ws.username.clone(),
        workspace_token: hex12(ws.token),
        links: SelfLink {
            this: link(format!("/api/{}", ws.username)),
        },
    }
}

// ---- workspace memberships -----------------------------------------------

#[derive(Debug, Serialize)]
pub(crate) struct MembershipJson {
    admin: bool,
    invited: bool,
    state: &'static str,
    member_username: String,
    member_token: String,
    activated_at: String,
    managed_by_scim: bool,
    #[serde(rename = "_links")]
    links: MembershipLinks,
}

#[derive(Debug, Serialize)]
struct MembershipLinks {
    #[serde(rename = "self")]
    this: Link,
    web_self: Link,
    organization: Link,
    user: Link,
    groups: Link,
    /// Optional links of the spec's Membership; [GUESS] shown by state.
    #[serde(skip_serializing_if = "Option::is_none")]
    web_self_approve: Option<Link>,
    #[serde(skip_serializing_if = "Option::is_none")]
    web_self_unban: Option<Link>,
}

pub(crate) fn membership_json(store: &Store, i: u32) -> MembershipJson {
    let ws = &store.workspace.username;
    let token = hex12(store.membership_token(i));
    let username = store.username(i).into_owned();
    let m = store.membership(i);
    let state = m.map_or(MemberState::Deactivated, |m| m.state);
    let web_self = format!("/organizations/{ws}/memberships/{token}");
    MembershipJson {
        admin: m.is_some_and(|m| m.admin),
        invited: m.is_some_and(|m| m.invited),
        state: state.as_str(),
        member_token: hex12(store.user_token(i)),
        activated_at: rfc3339_from_millis(m.map_or(0, |m| m.activated_ms)),
        managed_by_scim: false,
        links: MembershipLinks {
            this: link(format!("/api/{ws}/memberships/{token}")),
            organization: link(format!("/api/{ws}")),
            user: link(format!("/api/{username}")),
            groups: link(format!("/api/{ws}/memberships/{token}/groups")),
            web_self_approve: (state == MemberState::Pending)
                .then(|| link(format!("{web_self}/approve"))),
            web_self_unban: (state == MemberState::Deactivated)
                .then(|| link(format!("{web_self}/unban"))),
            web_self: link(web_self),
        },
        member_username: username,
    }
}

// ---- groups --------------------------------------------------------------

#[derive(Debug, Serialize)]
pub(crate) struct GroupJson {
    token: String,
    /// [GUESS] every group is a custom group; the spec knows no values.
    group_type: &'static str,
    name: String,
    description: &'static str,
    state: &'static str,
    /// [GUESS] counts are integers though the docs type them as strings.
    member_count: usize,
    spaces_count: u32,
    data_sources_count: u32,
    managed: bool,
    #[serde(rename = "_links")]
    links: GroupLinks,
}

#[derive(Debug, Serialize)]
struct GroupLinks {
    #[serde(rename = "self")]
    this: Link,
    web: Link,
    #[serde(skip_serializing_if = "Option::is_none")]
    creator: Option<Link>,
    group_memberships: Link,
    membership_by_id: TemplatedLink,
    memberships_preview: Link,
}

pub(crate) fn group_json(store: &Store, g: u32) -> GroupJson {
    let ws = &store.workspace.username;
    let token = hex12(store.group_token(g));
    let group = store.group(g);
    let base = format!("/api/{ws}/groups/{token}");
    GroupJson {
        group_type: "custom",
        name: group.map(|g| g.name.clone()).unwrap_or_default(),
        description: "",
        state: group.map_or("active", |g| g.state.as_str()),
        member_count: group.map_or(0, |g| g.members.len()),
        spaces_count: 0,
        data_sources_count: 0,
        managed: false,
        links: GroupLinks {
            web: link(format!("/organizations/{ws}/groups/{token}")),
            creator: group
                .map(|g| g.creator)
                .filter(|&c| c != NO_USER)
                .map(|c| link(format!("/api/{}", store.username(c)))),
            group_memberships: link(format!("{base}/memberships")),
            membership_by_id: TemplatedLink {
                templated: true,
                href: format!("{base}/memberships{{/id}}"),
            },
            memberships_preview: link(format!("{base}/memberships/preview")),
            this: link(base),
        },
        token,
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct GroupMemberJson {
    token: String,
    member_token: String,
    #[serde(rename = "_links")]
    links: GroupMemberLinks,
}

#[derive(Debug, Serialize)]
struct GroupMemberLinks {
    #[serde(rename = "self")]
    this: Link,
    member: Link,
    user_group: Link,
    #[serde(skip_serializing_if = "Option::is_none")]
    creator: Option<Link>,
}

pub(crate) fn group_member_json(store: &Store, k: u32) -> GroupMemberJson {
    let ws = &store.workspace.username;
    let token = hex12(store.gm_token(k));
    let (group, user, creator) = store
        .gm(k)
        .map_or((0, 0, NO_USER), |gm| (gm.group, gm.user, gm.creator));
    let group_href = format!("/api/{ws}/groups/{}", hex12(store.group_token(group)));
    GroupMemberJson {
        member_token: hex12(store.user_token(user)),
        links: GroupMemberLinks {
            this: link(format!("{group_href}/memberships/{token}")),
            member: link(format!("/api/{}", store.username(user))),
            user_group: link(group_href),
            creator: (creator != NO_USER)
                .then(|| link(format!("/api/{}", store.username(creator)))),
        },
        token,
    }
}

// ---- invites ---------------------------------------------------------------

#[derive(Debug, Serialize)]
pub(crate) struct InviteJson {
    pub email: String,
    pub message: String,
    pub inviter_id: u64,
    pub invitee_id: u64,
    pub organization_id: u64,
    pub limited: bool,
    pub sent_at: String,
    pub resent_at: Option<String>,
    pub clicked_at: Option<String>,
    pub accepted_at: Option<String>,
    pub expires_at: String,
    pub created_at: String,
    #[serde(rename = "_links")]
    pub links: InviteLinks,
}

#[derive(Debug, Serialize)]
pub(crate) struct InviteLinks {
    pub inviter: Link,
    pub invitee: Link,
    pub web_self_resend: Link,
}

// ---- collections -----------------------------------------------------------

/// The optional `pagination` block (the report-runs shape real clients parse).
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct Pagination {
    pub page: usize,
    pub per_page: usize,
    pub count: usize,
    pub total_pages: usize,
    pub total_count: usize,
}

impl Pagination {
    /// Page `page` (1-based) of `total` items, and the index range it covers.
    pub(crate) fn of(page: usize, per_page: usize, total: usize) -> (Self, std::ops::Range<usize>) {
        let start = page.saturating_sub(1).saturating_mul(per_page).min(total);
        let end = start.saturating_add(per_page).min(total);
        let block = Self {
            page,
            per_page,
            count: end - start,
            total_pages: total.div_ceil(per_page),
            total_count: total,
        };
        (block, start..end)
    }
}

#[derive(Debug, Default, Serialize)]
pub(crate) struct CollectionLinks {
    #[serde(rename = "self", skip_serializing_if = "Option::is_none")]
    pub this: Option<Link>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page: Option<Link>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prev_page: Option<Link>,
}

impl CollectionLinks {
    /// `self`, plus `next_page`/`prev_page` when paginated.
    pub(crate) fn for_page(path: &str, page: Option<&Pagination>) -> Self {
        match page {
            None => Self {
                this: Some(link(path.to_owned())),
                ..Self::default()
            },
            Some(p) => {
                let at = |n: usize| link(format!("{path}?page={n}&per_page={}", p.per_page));
                Self {
                    this: Some(at(p.page)),
                    next_page: (p.page < p.total_pages).then(|| at(p.page + 1)),
                    prev_page: (p.page > 1).then(|| at((p.page - 1).min(p.total_pages.max(1)))),
                }
            }
        }
    }
}

/// A sequence serialised from an iterator on demand.
pub(crate) struct SeqOf<I>(pub I);

impl<I> Serialize for SeqOf<I>
where
    I: Iterator + Clone,
    I::Item: Serialize,
{
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.clone())
    }
}

/// A HAL collection: `{pagination?, _links, _embedded: {<key>: [...]}}`.
/// An empty list is written as `"_embedded":{}`, the datahub fixture's form,
/// always (a deterministic choice; clients must read a missing key as `[]`).
pub(crate) struct Collection<I> {
    pub pagination: Option<Pagination>,
    pub links: CollectionLinks,
    pub key: &'static str,
    pub items: SeqOf<I>,
    pub empty: bool,
}

struct Embedded<'a, I> {
    key: &'static str,
    items: &'a SeqOf<I>,
    empty: bool,
}

impl<I> Serialize for Embedded<'_, I>
where
    I: Iterator + Clone,
    I::Item: Serialize,
{
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(usize::from(!self.empty)))?;
        if !self.empty {
            map.serialize_entry(self.key, self.items)?;
        }
        map.end()
    }
}

impl<I> Serialize for Collection<I>
where
    I: Iterator + Clone,
    I::Item: Serialize,
{
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        if let Some(p) = &self.pagination {
            map.serialize_entry("pagination", p)?;
        }
        map.serialize_entry("_links", &self.links)?;
        map.serialize_entry(
            "_embedded",
            &Embedded {
                key: self.key,
                items: &self.items,
                empty: self.empty,
            },
        )?;
        map.end()
    }
}

// ---- Discovery API -----------------------------------------------------------

#[derive(Debug, Serialize)]
pub(crate) struct DiscoveryMember {
    id: u64,
    token: String,
    state: &'static str,
    member_email: String,
    member_token: String,
    member_username: String,
    banned_at: Option<String>,
    activated_at: String,
    last_report_created_at: Option<String>,
    last_report_edited_at: Option<String>,
    last_report_viewed_at: Option<String>,
    last_report_run_at: Option<String>,
    /// [GUESS] the `last_day_*` fields are calendar days (`YYYY-MM-DD`),
    /// as their names say; the spec gives no example.
    last_day_engaged: Option<String>,
    last_day_api_engaged: Option<String>,
    last_day_in_app_engaged: Option<String>,
    total_days_engaged: u64,
    last_exploration_created_at: Option<String>,
    last_exploration_updated_at: Option<String>,
}

fn day_of(ms: i64) -> String {
    let full = rfc3339_from_millis(ms);
    full.get(..10).map(str::to_owned).unwrap_or(full)
}

/// Activity is derived from the seed and the user's position, so it costs
/// no memory and is the same on every run. It lies between activation and
/// the data anchor (or removal, for former members).
pub(crate) fn discovery_member(store: &Store, i: u32) -> DiscoveryMember {
    let m = store.membership(i);
    let state = m.map_or(MemberState::Deactivated, |m| m.state);
    let activated = m.map_or(0, |m| m.activated_ms);
    let end = m
        .and_then(|m| m.banned_ms)
        .unwrap_or(crate::store::DATA_ANCHOR_MS);
    let mut rng = rollcall_sim_kit::SeededRng::new(mix(store.seed
        ^ ((Kind::Activity as u64) << 56)
        ^ u64::from(i)));
    let mut at = |earliest: i64, latest: i64| -> i64 {
        let room = (latest - earliest).max(0).unsigned_abs();
        latest - i64::try_from(rng.below(room + 1)).unwrap_or(0)
    };
    let engaged = state != MemberState::Pending && end > activated;
    let mut out = DiscoveryMember {
        id: store.membership_id(i),
        token: hex12(store.membership_token(i)),
        state: state.as_str(),
        member_email: store.email(i).into_owned(),
        member_token: hex12(store.user_token(i)),
        member_username: store.username(i).into_owned(),
        banned_at: m.and_then(|m| m.banned_ms).map(rfc3339_from_millis),
        activated_at: rfc3339_from_millis(activated),
        last_report_created_at: None,
        last_report_edited_at: None,
        last_report_viewed_at: None,
        last_report_run_at: None,
        last_day_engaged: None,
        last_day_api_engaged: None,
        last_day_in_app_engaged: None,
        total_days_engaged: 0,
        last_exploration_created_at: None,
        last_exploration_updated_at: None,
    };
    if !engaged {
        return out;
    }
    // Most recent in-app day within 90 days of the end, never before activation.
    let recent = (end - 90 * DAY_MS).max(activated);
    let in_app = at(recent, end);
    let roll = mix(u64::from(i) ^ store.seed) % 100;
    let api = (roll < 25).then(|| at(recent, end));
    let last = api.map_or(in_app, |a| a.max(in_app));
    let span_days = u64::try_from((last - activated) / DAY_MS).unwrap_or(0) + 1;
    out.total_days_engaged = 1 + mix(u64::from(i) ^ 0xD1CE) % span_days;
    out.last_day_in_app_engaged = Some(day_of(in_app));
    out.last_day_api_engaged = api.map(day_of);
    out.last_day_engaged = Some(day_of(last));
    out.last_report_viewed_at = Some(rfc3339_from_millis(at(activated, in_app)));
    if roll.is_multiple_of(2) {
        out.last_report_run_at = Some(rfc3339_from_millis(at(activated, last)));
    }
    if roll.is_multiple_of(3) {
        let created = at(activated, in_app);
        out.last_report_created_at = Some(rfc3339_from_millis(created));
        out.last_report_edited_at = Some(rfc3339_from_millis(at(created, in_app)));
    }
    if roll.is_multiple_of(5) {
        let created = at(activated, in_app);
        out.last_exploration_created_at = Some(rfc3339_from_millis(created));
        out.last_exploration_updated_at = Some(rfc3339_from_millis(at(created, in_app)));
    }
    out
}

/// `{"pagination":{...},"members":[...],"_links":{next_page?, prev_page?}}`.
pub(crate) struct DiscoveryPage<I> {
    pub pagination: Pagination,
    pub members: SeqOf<I>,
    pub links: CollectionLinks,
}

impl<I> Serialize for DiscoveryPage<I>
where
    I: Iterator + Clone,
    I::Item: Serialize,
{
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(3))?;
        map.serialize_entry("pagination", &self.pagination)?;
        map.serialize_entry("members", &self.members)?;
        map.serialize_entry("_links", &self.links)?;
        map.end()
    }
}
