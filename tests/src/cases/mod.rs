//! The cases, grouped by topic. Each is a `pub async fn(&Ctx)` that panics on a contract violation.
//!
//! Adding a case: write it in its topic module and list it in [`__for_each_case`](crate::__for_each_case).
//!
//! Cases use no runtime API: time passes only through [`Ctx::advance`], concurrency goes through
//! [`run_concurrently`](crate::run_concurrently), and everything else is plain `futures`. Every key a
//! case touches is under [`Ctx::ns`].
//!
//! Contract lines with no case, because a case cannot check them without leaving its namespace or
//! timing the backend: `clear("")` clearing the whole store, and `scan`'s "no single call walks the
//! whole keyspace".

use std::collections::HashSet;
use std::fmt::Debug;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use cache_core::{ErrorKind, Result, ScanCursor, SetOptions};

use crate::Ctx;

pub mod basic;
pub mod batch;
pub mod cas;
pub mod clear;
pub mod collections;
pub mod concurrency;
pub mod conditions;
pub mod counters;
pub mod delete;
pub mod facade;
pub mod facade_msgpack;
pub mod keys;
pub mod limits;
pub mod scan;
pub mod tiered;
pub mod ttl;

/// Lists every case as `group { case, ... }` and hands the list to a callback macro.
#[doc(hidden)]
#[macro_export]
macro_rules! __for_each_case {
    ($callback:ident ! ($($args:tt)*)) => {
        $crate::$callback! { ($($args)*)
            basic {
                get_of_missing_key_is_none,
                set_then_get_round_trips,
                set_overwrites_previous_value,
                empty_value_round_trips,
                one_mib_value_round_trips,
                binary_value_round_trips,
                exists_reflects_presence,
                ping_answers,
                capabilities_and_limits_are_stable,
            }
            batch {
                get_many_mixes_present_and_missing_in_order,
                get_many_fills_one_slot_per_duplicate,
                get_many_of_empty_request_is_empty,
                get_many_with_an_invalid_key_fails_whole_call,
                set_many_writes_every_key,
                set_many_later_duplicate_wins,
                set_many_of_empty_batch_is_noop,
                set_many_with_an_invalid_entry_writes_nothing,
                set_many_with_ttl_expires_every_key,
                set_many_without_ttl_removes_old_ttls,
                delete_many_counts_only_existing_keys,
            }
            conditions {
                always_writes_and_returns_true,
                if_absent_writes_only_when_absent,
                if_present_writes_only_when_present,
                if_absent_treats_expired_key_as_absent,
                if_present_treats_expired_key_as_absent,
                refused_write_changes_neither_value_nor_ttl,
            }
            ttl {
                key_expires_after_ttl,
                key_lives_until_its_ttl,
                ttl_of_missing_key_is_missing,
                ttl_of_key_without_ttl_is_persistent,
                ttl_of_key_with_ttl_is_within_bounds,
                ttl_of_expired_key_is_missing,
                fractional_ttl_is_rounded_up_to_millis,
                set_without_ttl_removes_old_ttl,
                set_with_ttl_replaces_old_ttl,
                expired_key_is_absent_to_every_read,
                expire_makes_existing_key_expire,
                expire_of_missing_key_creates_nothing,
                expire_of_expired_key_returns_false,
                expire_replaces_existing_ttl,
                persist_removes_ttl,
                persist_of_key_without_ttl_returns_false,
                persist_of_missing_or_expired_key_returns_false,
            }
            delete {
                delete_of_existing_key_returns_true,
                delete_of_missing_key_returns_false,
                delete_of_expired_key_returns_false,
                deleted_key_can_be_set_again,
            }
            counters {
                incr_of_missing_key_starts_at_zero,
                incr_accumulates_positive_and_negative_deltas,
                counter_is_stored_as_decimal_ascii,
                incr_reads_decimal_value_written_by_set,
                incr_of_non_integer_fails_and_keeps_value,
                incr_overflow_fails_and_keeps_value,
                incr_ttl_on_create_applies_when_creating,
                incr_ttl_on_create_is_ignored_for_existing_key,
                incr_of_expired_key_starts_over,
            }
            cas {
                swaps_when_value_matches,
                does_not_swap_when_value_differs,
                expected_none_requires_absent_key,
                expected_none_matches_expired_key,
                expected_value_on_missing_key_fails,
                new_none_deletes_key,
                swap_applies_new_ttl,
                swap_without_ttl_clears_old_ttl,
            }
            scan {
                scan_pages_return_every_key_with_prefix,
                scan_never_returns_keys_outside_prefix,
                scan_of_unused_prefix_is_empty,
                scan_stream_yields_every_key,
                scan_skips_expired_keys,
                scan_treats_glob_characters_literally,
                scan_accepts_any_count_hint,
            }
            clear {
                clear_removes_only_its_prefix,
                clear_of_unused_prefix_returns_zero,
                clear_treats_glob_characters_literally,
                clear_does_not_count_expired_keys,
            }
            keys {
                unicode_key_round_trips_and_scans,
                key_of_max_len_is_accepted,
                keys_differing_only_in_case_are_distinct,
            }
            limits {
                empty_key_is_rejected_by_every_method,
                overlong_key_is_rejected_by_every_method,
                invalid_key_error_names_the_limit,
                oversized_value_is_rejected,
                value_of_max_len_is_accepted,
                zero_ttl_is_rejected,
                ttl_above_max_is_rejected,
                sub_millisecond_ttl_is_accepted,
            }
            concurrency {
                concurrent_incr_never_loses_updates,
                concurrent_cas_has_exactly_one_winner,
                concurrent_if_absent_has_exactly_one_winner,
                concurrent_cas_increments_never_lose_updates,
                concurrent_writers_to_distinct_keys_all_land,
                atomic_operations_are_linearizable,
            }
            collections {
                hash_fields_round_trip,
                hdel_of_last_field_removes_the_hash,
                hincr_by_counts_and_refuses_what_is_not_an_integer,
                hscan_pages_cover_a_large_hash,
                list_pushes_and_pops_at_both_ends,
                ltrim_keeps_a_range,
                set_members_are_added_counted_and_removed,
                sorted_set_scores_and_ranks,
                sorted_set_ranges_by_rank_and_score,
                wrong_type_is_refused_and_changes_nothing,
                a_collection_is_one_key,
                a_collection_expires_whole,
                bad_fields_members_values_and_counts_are_refused,
                concurrent_pushes_and_pops_lose_nothing,
                concurrent_field_and_score_increments_sum_exactly,
                typed_handles_round_trip_through_the_codec,
            }
            facade {
                namespaces_are_isolated,
                typed_values_round_trip,
                default_ttl_applies,
                codec_error_names_key_and_type_and_keeps_entry,
                non_finite_floats_are_refused_and_nothing_is_written,
                shared_values_cannot_be_changed_behind_the_cache,
                reading_as_another_type_decodes_the_bytes,
                exists_ttl_expire_and_persist,
                conditional_sets_report_whether_they_wrote,
                typed_compare_and_swap_swaps_only_on_the_expected_value,
                batches_with_a_ttl_and_delete_many,
                invalidate_prefix_deletes_only_that_sub_prefix,
                invalidate_pattern_follows_redis_glob_semantics,
                stats_carry_the_stores_evictions_and_expirations,
                get_or_insert_with_returns_cached_value,
                get_or_insert_with_runs_loader_once_for_concurrent_callers,
                failing_loader_reaches_every_waiter_and_caches_nothing,
                stats_count_as_documented,
            }
            facade_msgpack {
                namespaces_are_isolated,
                typed_values_round_trip,
                default_ttl_applies,
                codec_error_names_key_and_type_and_keeps_entry,
                non_finite_floats_are_refused_and_nothing_is_written,
                shared_values_cannot_be_changed_behind_the_cache,
                reading_as_another_type_decodes_the_bytes,
                exists_ttl_expire_and_persist,
                conditional_sets_report_whether_they_wrote,
                typed_compare_and_swap_swaps_only_on_the_expected_value,
                batches_with_a_ttl_and_delete_many,
                invalidate_prefix_deletes_only_that_sub_prefix,
                invalidate_pattern_follows_redis_glob_semantics,
                stats_carry_the_stores_evictions_and_expirations,
                get_or_insert_with_returns_cached_value,
                get_or_insert_with_runs_loader_once_for_concurrent_callers,
                failing_loader_reaches_every_waiter_and_caches_nothing,
                stats_count_as_documented,
            }
            tiered {
                tiered_typed_methods,
                tiered_invalidations_reach_the_other_instance,
                tiered_invalidations_stay_in_their_namespace,
            }
        }
    };
}

/// Short TTL used by expiry cases: small enough for a real clock, big enough to survive a round trip.
pub(crate) const SHORT_TTL: Duration = Duration::from_millis(100);
/// How long to let pass for a [`SHORT_TTL`] entry to be surely gone.
pub(crate) const PAST_SHORT_TTL: Duration = Duration::from_millis(250);
/// A TTL that no case outlives.
pub(crate) const LONG_TTL: Duration = Duration::from_secs(600);
/// Most scan calls a case makes before deciding the scan never ends.
const SCAN_CALL_CAP: usize = 200_000;

/// `Bytes` from anything byte-like.
pub(crate) fn b(v: impl AsRef<[u8]>) -> Bytes {
    Bytes::copy_from_slice(v.as_ref())
}

/// Unwraps an error and checks its kind; `what` says which call it was.
#[track_caller]
pub(crate) fn expect_kind<T: Debug>(
    result: Result<T>,
    kind: ErrorKind,
    what: &str,
) -> cache_core::Error {
    match result {
        Ok(v) => panic!("{what}: expected an error of kind {kind:?}, got Ok({v:?})"),
        Err(e) => {
            assert_eq!(e.kind(), kind, "{what}: wrong error kind: {e}");
            e
        }
    }
}

/// Writes `value` under `key` with no TTL, unconditionally.
pub(crate) async fn put(ctx: &Ctx, key: &str, value: impl AsRef<[u8]>) {
    let wrote = ctx
        .store()
        .set(key, b(value), SetOptions::new())
        .await
        .unwrap_or_else(|e| panic!("set({key:?}) failed: {e}"));
    assert!(wrote, "an unconditional set({key:?}) returned false");
}

/// Writes `value` under `key` with `ttl`.
pub(crate) async fn put_ttl(ctx: &Ctx, key: &str, value: impl AsRef<[u8]>, ttl: Duration) {
    let wrote = ctx
        .store()
        .set(key, b(value), SetOptions::new().ttl(ttl))
        .await
        .unwrap_or_else(|e| panic!("set({key:?}, ttl {ttl:?}) failed: {e}"));
    assert!(wrote, "an unconditional set({key:?}) returned false");
}

/// Reads `key`, panicking on error.
pub(crate) async fn read(ctx: &Ctx, key: &str) -> Option<Bytes> {
    ctx.store()
        .get(key)
        .await
        .unwrap_or_else(|e| panic!("get({key:?}) failed: {e}"))
}

/// Asserts that a read returned exactly `expected` (a value, not a miss).
#[track_caller]
pub(crate) fn assert_value(actual: Option<Bytes>, expected: Option<impl AsRef<[u8]>>, what: &str) {
    let expected = expected.as_ref().map(AsRef::as_ref);
    assert_eq!(actual.as_deref(), expected, "{what}");
}

/// Every key a full scan of `prefix` returns, pages of about `count`. Fails on a key outside the
/// prefix and on a scan that does not end within [`SCAN_CALL_CAP`] calls.
pub(crate) async fn scan_all(ctx: &Ctx, prefix: &str, count: usize) -> HashSet<String> {
    let mut seen = HashSet::new();
    let mut cursor = ScanCursor::start();
    for _ in 0..SCAN_CALL_CAP {
        let page = ctx
            .store()
            .scan(prefix, cursor, count)
            .await
            .unwrap_or_else(|e| panic!("scan({prefix:?}) failed: {e}"));
        for key in page.keys {
            assert!(
                key.starts_with(prefix),
                "scan({prefix:?}) returned {key:?}, which lacks the prefix"
            );
            seen.insert(key);
        }
        match page.next {
            Some(next) => {
                assert!(
                    !next.is_start(),
                    "scan({prefix:?}) returned the start cursor as `next`, so it would never end"
                );
                cursor = next;
            }
            None => return seen,
        }
    }
    panic!("scan({prefix:?}) did not finish within {SCAN_CALL_CAP} calls");
}

/// Keys under this case's namespace, as a full scan sees them.
pub(crate) async fn keys_in_ns(ctx: &Ctx) -> HashSet<String> {
    scan_all(ctx, ctx.ns(), 100).await
}

/// Asserts that nothing at all exists under the case's namespace.
pub(crate) async fn assert_ns_empty(ctx: &Ctx, what: &str) {
    let keys = keys_in_ns(ctx).await;
    assert!(
        keys.is_empty(),
        "{what}: expected nothing written, but found {keys:?}"
    );
}

/// Lets other tasks run once, without a runtime API (wakes itself and returns `Pending` once).
pub(crate) async fn yield_now() {
    let mut yielded = false;
    futures::future::poll_fn(|cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await
}

/// `ttl` rounded up to whole milliseconds, as every store stores it.
pub(crate) fn ceil_millis(ttl: Duration) -> Duration {
    let ms = Duration::from_millis(ttl.as_millis() as u64);
    if ms < ttl {
        ms + Duration::from_millis(1)
    } else {
        ms
    }
}

/// A key under the namespace exactly one byte longer than `max_key_len`.
pub(crate) fn overlong_key(ctx: &Ctx) -> String {
    let max = ctx.store().limits().max_key_len;
    let fill = (max + 1).saturating_sub(ctx.ns().len()).max(1);
    let key = ctx.key(&"x".repeat(fill));
    assert!(key.len() > max);
    key
}
