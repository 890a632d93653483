//! `source=cache` reads of the unified API: the last good sync's snapshot,
//! filtered and keyset-paged in the store, so a page costs the same with a
//! thousand cached users or a million.

use rollcall_connectors::UserQuery;
use rollcall_core::ErrorCode;
use rollcall_core::id::AccountId;
use rollcall_core::unified::{Group, GroupMembership, Ref, User, UserStatus};
use rollcall_store::{CachedUserFilter, CachedUserRow};

use crate::app::AppState;
use crate::auth::Caller;
use crate::cursor::{CursorCodec, ListEnvelope};
use crate::error::ApiError;

/// The account, if the caller's tenant has it and it has been synced.
pub async fn synced_account(
    state: &AppState,
    caller: &Caller,
    account_id: &str,
    include_remote_data: Option<bool>,
) -> Result<AccountId, ApiError> {
    let missing = || ApiError::not_found("no such integrated account");
    let id = AccountId::parse(account_id).map_err(|_| missing())?;
    // An account that has a completed sync keeps having one until it is
    // deleted: a recent answer is kept (`AppState::synced_accounts`).
    let now = state.clock.now_millis();
    let recent = state.synced_accounts.get(&id, now);
    let known = recent
        .as_ref()
        .is_ok_and(|tenant| *tenant == caller.tenant_id);
    if !known {
        state
            .store
            .account(&caller.tenant_id, &id)
            .await?
            .ok_or_else(missing)?;
    }
    if include_remote_data == Some(true) {
        return Err(ApiError::invalid_request(
            "remote_data is not kept in the snapshot; use source=live to get the vendor's objects",
        ));
    }
    if !known {
        if state.store.last_good_sync_at(&id).await?.is_none() {
            return Err(ApiError::new(
                ErrorCode::Conflict,
                "source=cache reads the last sync's snapshot, and this account has no completed \
                 sync yet; sync it (POST /integrated-accounts/{id}/sync) or use source=live",
            ));
        }
        if let Err(miss) = recent {
            state
                .synced_accounts
                .put(miss, id.clone(), caller.tenant_id.clone(), now);
        }
    }
    Ok(id)
}

fn corrupt(e: serde_json::Error) -> ApiError {
    ApiError::internal(format!("a cached object is unreadable: {e}"))
}

async fn users_with_groups(
    state: &AppState,
    account: &AccountId,
    rows: Vec<CachedUserRow>,
) -> Result<Vec<User>, ApiError> {
    let ids: Vec<String> = rows.iter().map(|r| r.user_id.clone()).collect();
    let memberships = state.store.cached_user_groups(account, &ids).await?;
    rows.into_iter()
        .map(|row| {
            let mut user: User = serde_json::from_str(&row.data_json).map_err(corrupt)?;
            user.groups = Some(
                memberships
                    .iter()
                    .filter(|(u, _, _)| *u == row.user_id)
                    .map(|(_, id, name)| Ref {
                        id: id.clone(),
                        name: name.clone(),
                    })
                    .collect(),
            );
            Ok(user)
        })
        .collect()
}

pub async fn list_users(
    state: &AppState,
    account: &AccountId,
    query: UserQuery,
    key: &str,
    cursor: Option<&str>,
    limit: u32,
) -> Result<ListEnvelope<User>, ApiError> {
    let codec = CursorCodec::new(&state.vault);
    let after = cursor.map(|c| codec.decode(c, key)).transpose()?;
    let filter = CachedUserFilter {
        // As live: active users unless another status is asked for.
        status: Some(
            query
                .status
                .unwrap_or(UserStatus::Active)
                .as_str()
                .to_owned(),
        ),
        email: query.email,
        is_admin: query.is_admin,
        group_id: query.group_id,
    };
    let rows = state
        .store
        .cached_users(account, &filter, after.as_deref(), limit + 1)
        .await?;
    let (rows, next) = codec.page(rows, limit, key, |r| r.user_id.clone());
    let users = users_with_groups(state, account, rows).await?;
    Ok(ListEnvelope::new(users, next, false))
}

pub async fn get_user(state: &AppState, account: &AccountId, id: &str) -> Result<User, ApiError> {
    let row = state
        .store
        .cached_user(account, id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such user in the last sync's snapshot"))?;
    let mut users = users_with_groups(state, account, vec![row]).await?;
    users
        .pop()
        .ok_or_else(|| ApiError::not_found("no such user in the last sync's snapshot"))
}

pub async fn list_groups(
    state: &AppState,
    account: &AccountId,
    key: &str,
    cursor: Option<&str>,
    limit: u32,
) -> Result<ListEnvelope<Group>, ApiError> {
    let codec = CursorCodec::new(&state.vault);
    let after = cursor.map(|c| codec.decode(c, key)).transpose()?;
    let rows = state
        .store
        .cached_groups(account, after.as_deref(), limit + 1)
        .await?;
    let (rows, next) = codec.page(rows, limit, key, |r| r.group_id.clone());
    let groups = rows
        .iter()
        .map(|r| serde_json::from_str(&r.data_json).map_err(corrupt))
        .collect::<Result<Vec<Group>, _>>()?;
    Ok(ListEnvelope::new(groups, next, false))
}

pub async fn get_group(state: &AppState, account: &AccountId, id: &str) -> Result<Group, ApiError> {
    let row = state
        .store
        .cached_group(account, id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such group in the last sync's snapshot"))?;
    serde_json::from_str(&row.data_json).map_err(corrupt)
}

pub async fn list_memberships(
    state: &AppState,
    account: &AccountId,
    group_id: Option<&str>,
    user_id: Option<&str>,
    key: &str,
    cursor: Option<&str>,
    limit: u32,
) -> Result<ListEnvelope<GroupMembership>, ApiError> {
    let codec = CursorCodec::new(&state.vault);
    let after = cursor.map(|c| codec.decode(c, key)).transpose()?;
    let after_pair = match after.as_deref() {
        Some(position) => Some(
            GroupMembership::parse_id(position)
                .ok_or_else(|| ApiError::invalid_request("next_cursor is not valid"))?,
        ),
        None => None,
    };
    let rows = state
        .store
        .cached_memberships(account, group_id, user_id, after_pair, limit + 1)
        .await?;
    let (rows, next) = codec.page(rows, limit, key, |(g, u)| GroupMembership::id_for(g, u));
    let memberships = rows
        .into_iter()
        .map(|(group_id, user_id)| GroupMembership {
            id: GroupMembership::id_for(&group_id, &user_id),
            group_id,
            user_id,
            created_at: None,
        })
        .collect();
    Ok(ListEnvelope::new(memberships, next, false))
}
