//! mode-sync: how close a Mode sync comes to the fastest any client could
//! be under the vendor's rate limit.
//!
//! The simulator holds `members` workspace members (about 3% pending, 5%
//! former members, 5% admins, like its own seeding) and `groups` groups of
//! varied sizes, loaded from a data file the bench writes (the simulator's
//! own seeding makes at most 16 groups for 2,000 members). It enforces
//! `limit` requests per `window` seconds per credential, and the linked
//! account's `config.rate_limit` says the same, so Rollcall paces itself.
//!
//! Phases, each started after a full idle window (so both limiters are
//! empty) and with the simulator's counters reset (so the link-time
//! credential check and the churn are not counted):
//!
//! 1. `full`: the first sync. Every member's details are fetched.
//! 2. `incremental`: after 1% churn made through Rollcall's unified API
//!    (invites, deprovisions, group membership adds and removes; Mode has
//!    no API to change a member's admin flag), under the same limit. It
//!    usually needs fewer calls than one window allows, so its bound is 0
//!    and its ratio is undefined: it is reported, not judged.
//! 3. `incremental-tight`: another 1% churn, then the same kind of sync
//!    under `incremental_limit` requests per window (Mode's documented 40
//!    by default), so the incremental sync spans several windows and its
//!    ratio means something. The simulator's limit is changed at run time
//!    and the account's `config.rate_limit` is patched to match.
//!
//! N is every request the simulator saw with the linked credential during
//! the sync, less any it refused with 429 (the vendor does not count
//! those); the bound is floor((N - 1) / L) * W and the ratio is the wall
//! time from `POST /sync` to the first poll that saw the run finished,
//! divided by the bound. Goal: <= 1.10.

use std::collections::{BTreeSet, HashSet};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use rollcall_client::{Client, GroupMembership, User, encode};
use rollcall_core::unified::{Group, UserStatus};
use rollcall_sim_mode::{ModeSim, ModeSimConfig, RunningModeSim};
use serde_json::{Value, json};

use crate::{Rollcall, build_profile, cores, lower_bound_secs, round, start_rollcall};

#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub members: usize,
    pub groups: usize,
    pub limit: u32,
    pub window_secs: u64,
    /// The limit of the third phase; 0 skips it.
    pub incremental_limit: u32,
    /// Mode list page size; 0 = whole lists.
    pub page_size: usize,
    /// Changes per churn round, split evenly over four kinds (at least one each).
    pub churn: usize,
    pub quick: bool,
}

impl Options {
    pub(crate) fn full() -> Self {
        Self {
            members: 2_000,
            groups: 100,
            limit: 200,
            window_secs: 10,
            incremental_limit: 40,
            page_size: 100,
            churn: 20,
            quick: false,
        }
    }

    /// Small enough for CI in a debug build: about 30 seconds, most of it
    /// idle windows.
    pub(crate) fn quick() -> Self {
        Self {
            members: 200,
            groups: 10,
            limit: 50,
            window_secs: 2,
            incremental_limit: 5,
            page_size: 100,
            churn: 2,
            quick: true,
        }
    }
}

/// SplitMix64: deterministic data without another dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
}

/// The simulator's data file: `members` members (alice and bob, which the
/// simulator adds itself, included) and `groups` live groups.
fn dataset(members: usize, groups: usize) -> Value {
    let mut rng = Rng(7);
    let mut users = Vec::with_capacity(members);
    // Active and pending members: the ones a group may hold.
    let mut groupable: Vec<String> = vec!["alice".into(), "bob".into()];
    for n in 3..=members {
        let username = format!("user{n:06}");
        let state = match rng.below(100) {
            0..3 => "pending",
            3..8 => "deactivated",
            _ => "active",
        };
        let admin = state == "active" && rng.below(100) < 5;
        users.push(json!({
            "username": username,
            "name": format!("User {n}"),
            "email": format!("{username}@acme.example"),
            "state": state,
            "admin": admin,
        }));
        if state != "deactivated" {
            groupable.push(username);
        }
    }
    let a = groupable.len() as u64;
    let mut list = Vec::with_capacity(groups);
    for g in 0..groups {
        // Mostly small groups, a few holding a large share (as the
        // simulator's own seeding does).
        let size = match rng.below(100) {
            0..40 => rng.below(6),
            40..75 => rng.below(a.min(50) + 1),
            75..95 => rng.below(a / 50 + 1),
            _ => rng.below(a / 10 + 1),
        }
        .min(a);
        let mut chosen = BTreeSet::new();
        while (chosen.len() as u64) < size {
            chosen.insert(usize::try_from(rng.below(a)).unwrap_or(0));
        }
        let names: Vec<&str> = chosen
            .iter()
            .filter_map(|&i| groupable.get(i).map(String::as_str))
            .collect();
        list.push(json!({ "name": format!("Team {g:03}"), "members": names }));
    }
    json!({ "workspace": "acme", "users": users, "groups": list })
}

/// What one measured sync did.
struct Phase {
    name: &'static str,
    limit: u32,
    window_secs: u64,
    calls: u64,
    rate_limited: u64,
    bound_secs: u64,
    wall_secs: f64,
    run_secs: Option<f64>,
    counts: Value,
    attempts: i64,
    churn: Option<Churned>,
    by_route: Value,
}

impl Phase {
    fn ratio(&self) -> Option<f64> {
        (self.bound_secs > 0).then(|| self.wall_secs / self.bound_secs as f64)
    }

    fn count(&self, key: &str) -> u64 {
        self.counts.get(key).and_then(Value::as_u64).unwrap_or(0)
    }

    fn json(&self) -> Value {
        json!({
            "phase": self.name,
            "limit": format!("{}/{}s", self.limit, self.window_secs),
            "vendor_calls": self.calls,
            "vendor_429s": self.rate_limited,
            "vendor_calls_by_route": self.by_route,
            "elapsed_wall_secs": round(self.wall_secs, 3),
            "run_duration_secs": self.run_secs.map(|s| round(s, 3)),
            "lower_bound_secs": self.bound_secs,
            "ratio": self.ratio().map(|r| round(r, 3)),
            "goal": "<= 1.10",
            "counts": self.counts,
            "attempts": self.attempts,
            "churn_before": self.churn.as_ref().map(Churned::json),
        })
    }
}

pub(crate) async fn run(o: Options) -> anyhow::Result<()> {
    if o.limit == 0 || o.window_secs == 0 {
        bail!("--limit and --window must be positive");
    }
    let loopback = "127.0.0.1:0".parse()?;
    let data_dir = tempfile::tempdir()?;
    let data_file = data_dir.path().join("mode.json");
    std::fs::write(
        &data_file,
        serde_json::to_vec(&dataset(o.members, o.groups))?,
    )?;
    let window = Duration::from_secs(o.window_secs);
    let mode = ModeSim::new(ModeSimConfig {
        data_file: Some(data_file),
        page_size: (o.page_size > 0).then_some(o.page_size),
        rate_limit: Some((o.limit, window)),
        ..ModeSimConfig::default()
    })?
    .start(loopback)
    .await?;
    let state = reqwest::get(format!("{}/_sim/mode/state", mode.base_url()))
        .await?
        .json::<Value>()
        .await?;
    let rollcall = start_rollcall().await?;
    let f = mode.fixtures().clone();
    let config = |limit: u32| {
        json!({
            "base_url": mode.base_url(),
            "workspace": f.workspace,
            "rate_limit": { "requests": limit, "per_seconds": o.window_secs },
        })
    };
    let account = rollcall
        .client
        .create_account(&json!({
            "provider": "mode",
            "config": config(o.limit),
            "credentials": { "token": f.admin.token, "secret": f.admin.secret },
        }))
        .await?;
    let bench = Bench {
        rollcall: &rollcall,
        mode: &mode,
        account: &account.id,
        token: &f.admin.token,
        window_secs: o.window_secs,
    };

    let mut phases = vec![bench.sync("full", o.limit, None).await?];
    let churned = bench.churn(o.churn, 1).await?;
    phases.push(bench.sync("incremental", o.limit, Some(churned)).await?);
    if o.incremental_limit > 0 {
        let churned = bench.churn(o.churn, 2).await?;
        rollcall
            .client
            .update_account(
                &account.id,
                &json!({ "config": config(o.incremental_limit) }),
            )
            .await?;
        let answer = reqwest::Client::new()
            .post(format!("{}/_sim/mode/settings", mode.base_url()))
            .json(&json!({ "rate_limit": format!("{}/{}s", o.incremental_limit, o.window_secs) }))
            .send()
            .await?;
        if !answer.status().is_success() {
            bail!(
                "the simulator refused the new rate limit: {}",
                answer.text().await?
            );
        }
        phases.push(
            bench
                .sync("incremental-tight", o.incremental_limit, Some(churned))
                .await?,
        );
    }

    let members = state
        .pointer("/members/total")
        .cloned()
        .unwrap_or(Value::Null);
    let groups = state
        .pointer("/groups/active")
        .cloned()
        .unwrap_or(Value::Null);
    println!();
    println!(
        "| phase | members | groups | limit | vendor calls (N) | 429s | user details fetched | events | elapsed (wall) | run duration | lower bound | ratio | goal |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for p in &phases {
        let ratio = p
            .ratio()
            .map_or_else(|| "n/a (N ≤ L)".to_owned(), |r| format!("**{r:.3}**"));
        println!(
            "| mode-sync {} ({}) | {members} | {groups} | {}/{} s | {} | {} | {} | {} | {:.2} s | {} | {} s | {ratio} | ≤ 1.10 |",
            p.name,
            build_profile(),
            p.limit,
            p.window_secs,
            p.calls,
            p.rate_limited,
            p.count("user_details_fetched"),
            p.count("events"),
            p.wall_secs,
            p.run_secs
                .map_or_else(|| "-".to_owned(), |s| format!("{s:.2} s")),
            p.bound_secs,
        );
    }
    println!();
    println!(
        "Elapsed is wall time from POST /sync to the first poll (every 10 ms) that saw the run finished; \
         run duration is the run's own started→finished. N counts every request with the linked \
         credential during the sync (counters reset just before it; 429s excluded from the bound). \
         A bound of 0 (N ≤ L: the whole sync fits in the first window) gives no ratio; the \
         incremental-tight phase exists to give the incremental sync one."
    );

    let result = json!({
        "scenario": "mode-sync",
        "quick": o.quick,
        "build": build_profile(),
        "cores": cores(),
        "members": members,
        "groups": groups,
        "simulator_state": state,
        "page_size": (o.page_size > 0).then_some(o.page_size),
        "churn_per_round": o.churn,
        "elapsed_is": "wall time from POST /integrated-accounts/{id}/sync to the first 10 ms poll that saw the run finished",
        "bound_is": "floor((N - 1) / L) * W, N = requests by the linked credential during the sync less 429s",
        "phases": phases.iter().map(Phase::json).collect::<Vec<_>>(),
    });
    let name = if o.quick {
        "mode-sync-quick"
    } else {
        "mode-sync"
    };
    let path = crate::write_result(name, &result)?;
    println!("\nraw numbers: {}", path.display());

    let limited: u64 = phases.iter().map(|p| p.rate_limited).sum();
    if limited > 0 {
        bail!("the simulator answered 429 {limited} time(s): the limiter let too much through");
    }
    Ok(())
}

/// The running scenario: Rollcall, the simulator and the linked account.
struct Bench<'a> {
    rollcall: &'a Rollcall,
    mode: &'a RunningModeSim,
    account: &'a str,
    /// The linked credential's token, as the simulator counts it.
    token: &'a str,
    window_secs: u64,
}

impl Bench<'_> {
    async fn sync(
        &self,
        name: &'static str,
        limit: u32,
        churn: Option<Churned>,
    ) -> anyhow::Result<Phase> {
        let Self {
            rollcall,
            mode,
            account,
            token,
            window_secs,
        } = *self;
        // A whole idle window first, so neither limiter remembers anything
        // and the bound below is the true one.
        tokio::time::sleep(Duration::from_secs(window_secs) + Duration::from_millis(1_000)).await;
        mode.control().counters.reset();
        eprintln!("mode-sync: {name} sync under {limit}/{window_secs}s ...");
        let synced = crate::sync_and_wait(&rollcall.client, account).await?;
        let counters = mode.control().counters.snapshot();
        let calls = counters.by_credential.get(token).copied().unwrap_or(0);
        let rate_limited = counters.events.get("rate_limited").copied().unwrap_or(0);
        let admitted = calls.saturating_sub(rate_limited);
        let phase = Phase {
            name,
            limit,
            window_secs,
            calls,
            rate_limited,
            bound_secs: lower_bound_secs(admitted, u64::from(limit), window_secs),
            wall_secs: synced.wall_secs,
            run_secs: synced.run.duration_ms.map(|ms| ms as f64 / 1000.0),
            counts: synced.run.counts.clone().unwrap_or(Value::Null),
            attempts: synced.run.attempts,
            churn,
            by_route: serde_json::to_value(&counters.by_route)?,
        };
        eprintln!(
            "mode-sync: {name}: {calls} calls, {rate_limited} 429s, {:.2} s wall, bound {} s, counts {}",
            phase.wall_secs, phase.bound_secs, phase.counts
        );
        Ok(phase)
    }
}

/// The changes one churn round made at the vendor.
struct Churned {
    invited: usize,
    deprovisioned: usize,
    memberships_added: usize,
    memberships_removed: usize,
    vendor_calls: u64,
    secs: f64,
}

impl Churned {
    fn json(&self) -> Value {
        json!({
            "invited": self.invited,
            "deprovisioned": self.deprovisioned,
            "group_memberships_added": self.memberships_added,
            "group_memberships_removed": self.memberships_removed,
            "vendor_calls": self.vendor_calls,
            "secs": round(self.secs, 2),
            "expected_user_details_fetched": self.invited + self.deprovisioned,
        })
    }
}

/// Every page of a cached (`source=cache`) list: no vendor calls.
async fn cached<T, F, Fut>(mut page: F) -> anyhow::Result<Vec<T>>
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = Result<rollcall_client::Page<T>, rollcall_client::ClientError>>,
{
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut query = "source=cache&limit=1000".to_owned();
        if let Some(c) = &cursor {
            query.push_str(&format!("&next_cursor={}", encode(c)));
        }
        let p = page(query).await?;
        all.extend(p.result);
        match p.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(all),
        }
    }
}

/// `n` items spread evenly over `items`.
fn spread<T: Clone>(items: &[T], n: usize) -> Vec<T> {
    if items.is_empty() || n == 0 {
        return Vec::new();
    }
    let n = n.min(items.len());
    (0..n)
        .filter_map(|i| items.get(i * items.len() / n).cloned())
        .collect()
}

impl Bench<'_> {
    /// Makes `changes` changes at the vendor through Rollcall's unified API
    /// (a quarter each: invites, deprovisions, group membership adds and
    /// removes), choosing targets from the last sync's snapshot.
    async fn churn(&self, changes: usize, round_no: u32) -> anyhow::Result<Churned> {
        let Self {
            rollcall,
            mode,
            account,
            ..
        } = *self;
        let started = Instant::now();
        let calls_before = mode.control().counters.snapshot().total;
        let client: &Client = &rollcall.client;
        let per_kind = (changes / 4).max(1);
        let users: Vec<User> = cached(|q| async move { client.users(account, &q).await }).await?;
        let groups: Vec<Group> =
            cached(|q| async move { client.groups(account, &q).await }).await?;
        let memberships: Vec<GroupMembership> =
            cached(|q| async move { client.memberships(account, &q).await }).await?;

        let fixtures = ["alice", "bob"];
        let plain_members: Vec<&User> = users
            .iter()
            .filter(|u| {
                u.status == UserStatus::Active
                    && !u.is_admin
                    && !u
                        .username
                        .as_deref()
                        .is_some_and(|name| fixtures.contains(&name))
            })
            .collect();
        let victims: Vec<&User> = spread(&plain_members, per_kind);
        let victim_ids: HashSet<&str> = victims.iter().map(|u| u.id.as_str()).collect();
        let kept: Vec<&User> = plain_members
            .iter()
            .copied()
            .filter(|u| !victim_ids.contains(u.id.as_str()))
            .collect();
        let in_group: HashSet<(&str, &str)> = memberships
            .iter()
            .map(|m| (m.group_id.as_str(), m.user_id.as_str()))
            .collect();
        let removable: Vec<&GroupMembership> = memberships
            .iter()
            .filter(|m| !victim_ids.contains(m.user_id.as_str()))
            .collect();
        let removals = spread(&removable, per_kind);
        let removed: HashSet<(&str, &str)> = removals
            .iter()
            .map(|m| (m.group_id.as_str(), m.user_id.as_str()))
            .collect();
        let mut additions = Vec::new();
        for (i, group) in spread(&groups, per_kind).iter().enumerate() {
            let start = i * kept.len() / per_kind.max(1);
            let user = (0..kept.len())
                .filter_map(|k| kept.get((start + k) % kept.len()))
                .find(|u| {
                    let pair = (group.id.as_str(), u.id.as_str());
                    !in_group.contains(&pair) && !removed.contains(&pair)
                });
            if let Some(user) = user {
                additions.push((group.id.clone(), user.id.clone()));
            }
        }

        let http = reqwest::Client::new();
        let users_url = format!(
            "{}/unified/user-directory/users?integrated_account_id={}",
            rollcall.api,
            encode(account)
        );
        for i in 0..per_kind {
            let email = format!("churn{round_no}-{i}@acme.example");
            let answer = http
                .post(&users_url)
                .bearer_auth(&rollcall.key)
                .json(&json!({ "email": email }))
                .send()
                .await?;
            if !answer.status().is_success() {
                bail!("inviting {email} failed: {}", answer.text().await?);
            }
        }
        for user in &victims {
            let url = format!(
                "{}/unified/user-directory/users/{}?integrated_account_id={}",
                rollcall.api,
                encode(&user.id),
                encode(account)
            );
            let answer = http.delete(&url).bearer_auth(&rollcall.key).send().await?;
            if !answer.status().is_success() {
                bail!(
                    "deprovisioning {} failed: {}",
                    user.id,
                    answer.text().await?
                );
            }
        }
        for (group, user) in &additions {
            client
                .add_member(account, group, user)
                .await
                .context(format!("adding {user} to {group}"))?;
        }
        for m in &removals {
            client
                .remove_member(account, &m.group_id, &m.user_id)
                .await
                .context(format!("removing {} from {}", m.user_id, m.group_id))?;
        }
        let churned = Churned {
            invited: per_kind,
            deprovisioned: victims.len(),
            memberships_added: additions.len(),
            memberships_removed: removals.len(),
            vendor_calls: mode
                .control()
                .counters
                .snapshot()
                .total
                .saturating_sub(calls_before),
            secs: started.elapsed().as_secs_f64(),
        };
        eprintln!("mode-sync: churn round {round_no}: {}", churned.json());
        Ok(churned)
    }
}
