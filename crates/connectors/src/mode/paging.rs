//! Walking Mode's lists without skipping or repeating, whatever Mode does.
//!
//! Whether Mode paginates memberships, groups and group memberships is
//! unconfirmed (spec §4). We always ask for `?page=P&per_page=100` and read
//! the answer as one of:
//!
//! - **more than 100 items**: Mode ignored the parameters and sent the whole
//!   list; it is sliced here;
//! - a **`pagination` block** (or a `_links.next_page` carrying `page` and
//!   `per_page`): Mode paginated with the page size it states, which may
//!   differ from ours (we then re-ask for the page holding our position);
//! - otherwise page `P` of 100; a short or empty page is the end (a full one
//!   may be followed by an empty one).
//!
//! A position is the absolute index into Mode's order plus the key (token)
//! of the last item handed out. The key re-aligns the walk when the list
//! shifted between calls (the item is found elsewhere in the page), and
//! tells a whole list of exactly 100 items from a real second page (the last
//! item handed out reappears at its whole-list index).

use super::payload::{CollectionPage, Item, Keyed};

/// The page size we ask Mode for.
pub(crate) const PER_PAGE: usize = 100;

/// Where a walk stands: `index` is the absolute index of the next item in
/// Mode's order; `last` is the key of the item before it, if known.
/// Encoded as `"{index}"` or `"{index}.{key}"`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Cursor {
    pub index: usize,
    pub last: Option<String>,
}

/// Keys are Mode tokens (12 hex); anything else is not written into a
/// position (the walk then goes by index alone).
fn safe_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 64
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Cursor {
    /// The cursor just past the item at absolute index `index`.
    pub fn after(index: usize, key: &str) -> Self {
        Self {
            index: index.saturating_add(1),
            last: safe_key(key).then(|| key.to_owned()),
        }
    }

    pub fn encode(&self) -> String {
        match &self.last {
            Some(key) => format!("{}.{key}", self.index),
            None => self.index.to_string(),
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        let (index, last) = match text.split_once('.') {
            Some((index, key)) if safe_key(key) => (index, Some(key.to_owned())),
            Some(_) => return None,
            None => (text, None),
        };
        if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(Self {
            index: index.parse().ok()?,
            last,
        })
    }
}

/// A walk over every group's memberships: the group being walked (its
/// index in the group list, the key of the group before it, and its own
/// token, to notice when the group list shifted) and the cursor inside it.
/// Encoded as `"{group cursor}/{group token}/{member cursor}"`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CrossCursor {
    pub group: Cursor,
    pub current: Option<String>,
    pub member: Cursor,
}

impl CrossCursor {
    /// Moves on to the group after the one with this token.
    pub fn next_group(&mut self, token: &str) {
        self.group = Cursor::after(self.group.index, token);
        self.current = None;
        self.member = Cursor::default();
    }

    pub fn encode(&self) -> String {
        format!(
            "{}/{}/{}",
            self.group.encode(),
            self.current.as_deref().unwrap_or_default(),
            self.member.encode()
        )
    }

    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.split('/');
        let group = Cursor::parse(parts.next()?)?;
        let current = match parts.next()? {
            "" => None,
            token if safe_key(token) => Some(token.to_owned()),
            _ => return None,
        };
        let member = Cursor::parse(parts.next()?)?;
        if parts.next().is_some() {
            return None;
        }
        Some(Self {
            group,
            current,
            member,
        })
    }
}

/// The 1-based page holding `index` with pages of `per_page`.
pub(crate) fn page_for(index: usize, per_page: usize) -> usize {
    index / per_page.max(1) + 1
}

/// A run of Mode's list: the items from absolute index `base`.
#[derive(Debug, Clone)]
pub(crate) struct Window<T> {
    pub base: usize,
    pub items: Vec<Item<T>>,
    /// Items may follow this window.
    pub more: bool,
    /// The page asked for, and the page size it was computed with.
    pub page: usize,
    pub per_page: usize,
}

impl<T> Window<T> {
    pub fn end(&self) -> usize {
        self.base + self.items.len()
    }

    pub fn covers(&self, index: usize) -> bool {
        (self.base..self.end()).contains(&index)
    }

    pub fn get(&self, index: usize) -> Option<&Item<T>> {
        index.checked_sub(self.base).and_then(|k| self.items.get(k))
    }

    /// Nothing at or after `index` can be had: past this window with
    /// nothing following, or the page to ask next is the one just read.
    pub fn exhausted_at(&self, index: usize) -> bool {
        index >= self.end() && (!self.more || page_for(index, self.per_page) == self.page)
    }
}

/// How one answer lines up with Mode's whole list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placement {
    Window {
        base: usize,
        more: bool,
    },
    /// Mode paginates with another page size and the position is not in
    /// this page: ask again for the page that holds it.
    Retry {
        per_page: usize,
    },
}

/// `page`/`per_page` from a link such as `/api/acme/groups?page=3&per_page=30`.
fn link_paging(href: &str) -> (Option<usize>, Option<usize>) {
    let query = href.split_once('?').map(|(_, q)| q).unwrap_or_default();
    let mut page = None;
    let mut per_page = None;
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("page", v)) => page = v.parse().ok(),
            Some(("per_page", v)) => per_page = v.parse().ok(),
            _ => {}
        }
    }
    (page, per_page)
}

/// Places the answer to `?page={page}&per_page=PER_PAGE`, where `page` was
/// computed from `cursor.index` with pages of `assumed_per_page`.
pub(crate) fn place<T: Keyed>(
    page: usize,
    assumed_per_page: usize,
    answer: &CollectionPage<T>,
    cursor: &Cursor,
    may_retry: bool,
) -> Placement {
    let n = answer.items.len();
    if n > PER_PAGE {
        // Mode is not paginating: this is the whole list.
        return Placement::Window {
            base: 0,
            more: false,
        };
    }

    // Mode's own word on its paging, from the block or the next link.
    let stated = answer
        .pagination
        .and_then(|p| {
            let page = usize::try_from(p.page?).ok().filter(|&p| p >= 1)?;
            let per_page = usize::try_from(p.per_page?).ok().filter(|&q| q >= 1)?;
            let more = match p.total_pages.and_then(|t| usize::try_from(t).ok()) {
                Some(total) => page < total,
                None => n >= per_page,
            };
            Some((page, per_page, more || answer.has_next_link))
        })
        .or_else(|| {
            let (next, per_page) = link_paging(answer.next_link.as_deref()?);
            let per_page = per_page.filter(|&q| q >= 1)?;
            let page = next?.checked_sub(1).filter(|&p| p >= 1)?;
            Some((page, per_page, true))
        });
    if let Some((stated_page, per_page, more)) = stated {
        let base = (stated_page - 1).saturating_mul(per_page);
        let holds = (base..base + n.max(1)).contains(&cursor.index);
        let beyond = cursor.index >= base + n && more;
        if per_page != assumed_per_page && may_retry && !holds && (beyond || cursor.index < base) {
            return Placement::Retry { per_page };
        }
        return Placement::Window { base, more };
    }

    // A second page that holds the last item handed out at its whole-list
    // index is the whole list again (exactly PER_PAGE items, unpaginated).
    if page > 1
        && let (Some(last), Some(expected)) = (&cursor.last, cursor.index.checked_sub(1))
        && answer.items.iter().position(|i| i.data.key() == last) == Some(expected)
    {
        return Placement::Window {
            base: 0,
            more: false,
        };
    }
    Placement::Window {
        base: (page - 1).saturating_mul(assumed_per_page),
        more: n >= assumed_per_page || answer.has_next_link,
    }
}

/// Where to start reading `window` for `cursor`: just after the last item
/// handed out, wherever it is now in the window; else `cursor.index`.
pub(crate) fn aligned_start<T: Keyed>(window: &Window<T>, cursor: &Cursor) -> usize {
    let Some(last) = &cursor.last else {
        return cursor.index;
    };
    let expected = cursor.index.checked_sub(1);
    if let Some(item) = expected.and_then(|e| window.get(e))
        && item.data.key() == last
    {
        return cursor.index;
    }
    match window.items.iter().position(|i| i.data.key() == last) {
        Some(k) => window.base + k + 1,
        None => cursor.index,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::super::payload::{GroupMember, Pagination};
    use super::*;
    use serde_json::json;

    fn items(range: std::ops::Range<usize>) -> Vec<Item<GroupMember>> {
        range
            .map(|i| {
                Item::parse(json!({"token": format!("t{i:011}"), "member_token": "u"})).unwrap()
            })
            .collect()
    }

    fn answer(range: std::ops::Range<usize>) -> CollectionPage<GroupMember> {
        CollectionPage {
            items: items(range),
            pagination: None,
            has_next_link: false,
            next_link: None,
        }
    }

    fn at(index: usize) -> Cursor {
        Cursor {
            index,
            last: index.checked_sub(1).map(|i| format!("t{i:011}")),
        }
    }

    #[test]
    fn cursors_round_trip_and_refuse_junk() {
        for c in [
            Cursor::default(),
            Cursor::after(41, "5e1f00000002"),
            Cursor::after(0, "bad/key"),
        ] {
            assert_eq!(Cursor::parse(&c.encode()), Some(c.clone()));
        }
        assert_eq!(Cursor::after(0, "bad/key").last, None);
        for bad in ["", "x", "-1", "1.", "1.a/b", "1.2.3", " 1"] {
            assert_eq!(Cursor::parse(bad), None, "{bad}");
        }
        let mut cross = CrossCursor::default();
        assert_eq!(CrossCursor::parse(&cross.encode()), Some(cross.clone()));
        cross.current = Some("9f0000000001".into());
        cross.member = Cursor::after(150, "6a0000000001");
        assert_eq!(CrossCursor::parse(&cross.encode()), Some(cross.clone()));
        cross.next_group("9f0000000001");
        assert_eq!(cross.group.index, 1);
        assert_eq!(cross.member, Cursor::default());
        assert_eq!(CrossCursor::parse("0//0/x"), None);
        assert_eq!(CrossCursor::parse("0/a.b/0"), None);
    }

    #[test]
    fn whole_lists_are_recognised() {
        // More than asked for: the whole list.
        assert_eq!(
            place(3, PER_PAGE, &answer(0..300), &at(250), true),
            Placement::Window {
                base: 0,
                more: false
            }
        );
        // Exactly 100, unpaginated: page 2 repeats the last item at index 99.
        assert_eq!(
            place(2, PER_PAGE, &answer(0..100), &at(100), true),
            Placement::Window {
                base: 0,
                more: false
            }
        );
        // A real second page.
        assert_eq!(
            place(2, PER_PAGE, &answer(100..200), &at(100), true),
            Placement::Window {
                base: 100,
                more: true
            }
        );
        // A short page is the end.
        assert_eq!(
            place(2, PER_PAGE, &answer(100..150), &at(100), true),
            Placement::Window {
                base: 100,
                more: false
            }
        );
    }

    #[test]
    fn a_stated_page_size_wins() {
        let mut a = answer(0..30);
        a.pagination = Some(Pagination {
            page: Some(1),
            per_page: Some(30),
            total_pages: Some(4),
        });
        // Index 30 is not on Mode's page 1 of 30: ask again with 30.
        assert_eq!(
            place(1, PER_PAGE, &a, &at(30), true),
            Placement::Retry { per_page: 30 }
        );
        assert_eq!(
            place(1, PER_PAGE, &a, &at(5), true),
            Placement::Window {
                base: 0,
                more: true
            }
        );
        let mut b = answer(30..60);
        b.next_link = Some("/api/acme/groups?page=3&per_page=30".into());
        b.has_next_link = true;
        assert_eq!(
            place(2, 30, &b, &at(30), false),
            Placement::Window {
                base: 30,
                more: true
            }
        );
    }

    #[test]
    fn alignment_follows_the_last_item() {
        let window = Window {
            base: 100,
            items: items(100..200),
            more: true,
            page: 2,
            per_page: PER_PAGE,
        };
        assert_eq!(aligned_start(&window, &at(150)), 150);
        // Two items were inserted before: the last one seen is now further on.
        let shifted = Cursor {
            index: 148,
            last: Some(format!("t{:011}", 149)),
        };
        assert_eq!(aligned_start(&window, &shifted), 150);
        assert_eq!(
            aligned_start(
                &window,
                &Cursor {
                    index: 120,
                    last: None
                }
            ),
            120
        );
        assert!(!window.exhausted_at(199));
        assert!(!window.exhausted_at(200));
        let last = Window {
            more: false,
            ..window
        };
        assert!(last.exhausted_at(200));
    }
}
