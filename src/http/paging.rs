//! Page-numbered lists: `page` (from 1) and `perPage` (1 to 500, default 50), and the `meta`
//! every paged answer carries.

use serde::Serialize;

use super::{FieldErrors, QueryMap};

pub const DEFAULT_PER_PAGE: i64 = 50;
pub const MAX_PER_PAGE: i64 = 500;
const MAX_PAGE: i64 = 1_000_000_000;

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PageMeta {
    pub current_page: i64,
    pub per_page: i64,
    pub total: i64,
    pub last_page: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    pub page: i64,
    pub per_page: i64,
}

impl Paging {
    /// From `page` and `perPage`; a bad value is named in `errors`.
    pub fn from_query(query: &QueryMap, errors: &mut FieldErrors) -> Self {
        Self {
            page: query.int("page", 1..=MAX_PAGE, errors).unwrap_or(1),
            per_page: query
                .int("perPage", 1..=MAX_PER_PAGE, errors)
                .unwrap_or(DEFAULT_PER_PAGE),
        }
    }

    /// How many items come before this page.
    pub fn offset(&self) -> i64 {
        (self.page - 1) * self.per_page
    }

    pub fn meta(&self, total: i64) -> PageMeta {
        PageMeta {
            current_page: self.page,
            per_page: self.per_page,
            total,
            last_page: ((total + self.per_page - 1) / self.per_page).max(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn pages_tile_the_items_without_gap_or_overlap(total in 0i64..5000, per_page in 1i64..=MAX_PER_PAGE) {
            let last = Paging { page: 1, per_page }.meta(total).last_page;
            let mut covered = 0;
            for page in 1..=last {
                let p = Paging { page, per_page };
                prop_assert_eq!(p.offset(), covered);
                covered += per_page.min(total - p.offset()).max(0);
            }
            prop_assert_eq!(covered, total);
            let after = Paging { page: last + 1, per_page };
            prop_assert!(after.offset() >= total);
        }
    }
}
