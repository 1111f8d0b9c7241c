//! Every case of [`facade`](super::facade) again, with MessagePack as the cache's codec.

use crate::Ctx;

macro_rules! with_msgpack {
    ($($case:ident),* $(,)?) => {
        $(
            #[doc = concat!("[`facade::", stringify!($case), "`](super::facade::", stringify!($case), ") with MessagePack.")]
            pub async fn $case(ctx: &Ctx) {
                super::facade::$case(&ctx.with_msgpack()).await
            }
        )*
    };
}

with_msgpack!(
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
);
