//! Pages of a list: the request (`after` cursor and `limit`) and the page returned.

/// A page of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// The opaque cursor of the previous page's `next`, if any.
    pub after: Option<String>,
    /// At most this many items (stores clamp it to 1..=500).
    pub limit: u32,
}

impl Default for PageRequest {
    fn default() -> Self {
        Self {
            after: None,
            limit: 100,
        }
    }
}

impl PageRequest {
    /// The limit clamped to 1..=500.
    pub fn clamped_limit(&self) -> u32 {
        self.limit.clamp(1, 500)
    }
}

/// One page of results and the cursor for the next, if there is more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The items, in the listing's order.
    pub items: Vec<T>,
    /// Pass as [`PageRequest::after`] to get the next page.
    pub next: Option<String>,
}

impl<T> Page<T> {
    /// The page of `rows` fetched with a limit of `limit + 1`: the first `limit`, and
    /// when there were more, the cursor of the last one kept.
    pub fn of(mut rows: Vec<T>, limit: u32, cursor: impl Fn(&T) -> String) -> Self {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next = if more { rows.last().map(cursor) } else { None };
        Self { items: rows, next }
    }
}
