//! Generic pagination for the `page-array` (`result` is an array) and `page-items` (`result` is
//! `{items: [...]}`) styles.
//!
//! Stop rule: the page is empty, or `page >= result_info.total_pages`, or the page holds fewer
//! items than the server's `per_page` (the requested one when the server does not say).

use std::future::Future;

use serde::Deserialize;

use crate::de;
use crate::envelope::ResultInfo;
use crate::error::CloudflareError;

/// Safety net against a server that never signals the end.
pub const MAX_PAGES: u32 = 1000;

/// One page of a list.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub result_info: Option<ResultInfo>,
}

/// `result` shape of page-items endpoints.
#[derive(Debug, Deserialize)]
#[serde(bound(deserialize = "T: serde::de::DeserializeOwned"))]
pub(crate) struct ItemsResult<T> {
    #[serde(default = "Vec::new", deserialize_with = "de::null_default")]
    pub items: Vec<T>,
}

/// Whether another page should be requested after `page` (1-based).
pub fn has_next_page(page: u32, requested_per_page: u32, items_len: usize, info: Option<&ResultInfo>) -> bool {
    if items_len == 0 {
        return false;
    }
    if let Some(total_pages) = info.and_then(|i| i.total_pages)
        && u64::from(page) >= total_pages
    {
        return false;
    }
    let per_page = info.and_then(|i| i.per_page).filter(|p| *p > 0).unwrap_or(u64::from(requested_per_page));
    (items_len as u64) >= per_page
}

/// Fetch pages 1, 2, ... with `fetch(page)` until the stop rule says done; concatenate the items.
pub async fn collect_pages<T, F, Fut>(per_page: u32, mut fetch: F) -> Result<Vec<T>, CloudflareError>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<Page<T>, CloudflareError>>,
{
    let mut all = Vec::new();
    let mut page = 1u32;
    loop {
        let p = fetch(page).await?;
        let more = has_next_page(page, per_page, p.items.len(), p.result_info.as_ref());
        all.extend(p.items);
        if !more || page >= MAX_PAGES {
            return Ok(all);
        }
        page += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(page: u64, per_page: Option<u64>, total_pages: Option<u64>) -> ResultInfo {
        ResultInfo { page: Some(page), per_page, total_pages, ..ResultInfo::default() }
    }

    #[test]
    fn stop_rules() {
        // (page, requested, len, info, expected)
        let cases: Vec<(u32, u32, usize, Option<ResultInfo>, bool)> = vec![
            (1, 20, 0, None, false),                              // empty
            (1, 20, 20, None, true),                              // full, no info
            (1, 20, 19, None, false),                             // short
            (1, 20, 20, Some(info(1, Some(20), Some(1))), false), // last by total_pages
            (1, 20, 20, Some(info(1, Some(20), Some(3))), true),  // more pages
            (3, 20, 20, Some(info(3, Some(20), Some(3))), false), // at total_pages
            (1, 100, 50, Some(info(1, Some(50), Some(4))), true), // server capped per_page at 50
            (1, 100, 50, Some(info(1, Some(50), None)), true),    // capped, no total
            (1, 100, 50, Some(info(1, None, None)), false),       // short vs requested
            (2, 10, 10, Some(info(2, Some(0), None)), true),      // per_page 0 ignored
            (1, 10, 10, Some(info(1, Some(10), Some(0))), false), // total_pages 0 means nothing more
        ];
        for (i, (page, req, len, info, want)) in cases.into_iter().enumerate() {
            assert_eq!(has_next_page(page, req, len, info.as_ref()), want, "case {i}");
        }
    }

    #[tokio::test]
    async fn collects_until_short_page() {
        let data: Vec<u32> = (0..25).collect();
        let mut calls = Vec::new();
        let out = collect_pages(10, |page| {
            calls.push(page);
            let start = ((page - 1) * 10) as usize;
            let items = data.iter().skip(start).take(10).copied().collect();
            async move { Ok(Page { items, result_info: None }) }
        })
        .await
        .unwrap();
        assert_eq!(out, data);
        assert_eq!(calls, vec![1, 2, 3]);
    }

    #[tokio::test]
    async fn exact_multiple_needs_one_empty_page_without_total() {
        let mut calls = 0;
        let out: Vec<u32> = collect_pages(2, |page| {
            calls += 1;
            let items = if page <= 2 { vec![page, page] } else { vec![] };
            async move { Ok(Page { items, result_info: None }) }
        })
        .await
        .unwrap();
        assert_eq!(out, vec![1, 1, 2, 2]);
        assert_eq!(calls, 3);
    }

    #[tokio::test]
    async fn errors_propagate_and_runaway_is_capped() {
        let r: Result<Vec<u32>, _> =
            collect_pages(1, |_| async { Err(CloudflareError::InvalidInput("boom".into())) }).await;
        assert!(r.is_err());
        let mut calls = 0u32;
        let out: Vec<u32> = collect_pages(1, |p| {
            calls += 1;
            async move { Ok(Page { items: vec![p], result_info: None }) }
        })
        .await
        .unwrap();
        assert_eq!(calls, MAX_PAGES);
        assert_eq!(out.len(), MAX_PAGES as usize);
    }
}
