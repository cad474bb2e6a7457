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

    /// How many rows to fetch: the clamped limit plus one, to learn whether there is a
    /// next page ([`Page::of_fetched`]).
    pub fn fetch_limit(&self) -> u32 {
        self.clamped_limit() + 1
    }
}

impl<T> Page<T> {
    /// The page of `fetched` (at most [`PageRequest::fetch_limit`] rows, in the listing's
    /// order): the first `limit` items, and the cursor of the last one when there were
    /// more.
    pub fn of_fetched(
        mut fetched: Vec<T>,
        page: &PageRequest,
        cursor: impl Fn(&T) -> String,
    ) -> Self {
        let limit = usize::try_from(page.clamped_limit()).unwrap_or(usize::MAX);
        let more = fetched.len() > limit;
        fetched.truncate(limit);
        let next = if more {
            fetched.last().map(cursor)
        } else {
            None
        };
        Self {
            items: fetched,
            next,
        }
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
