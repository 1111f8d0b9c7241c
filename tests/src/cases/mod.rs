//! The cases, grouped by topic. Each is a `pub async fn(&Ctx)` that panics on a contract violation.
//!
//! Adding a case: write it in its topic module and list it in [`__for_each_case`](crate::__for_each_case).

pub mod basic;

/// Lists every case as `group { case, ... }` and hands the list to a callback macro.
#[doc(hidden)]
#[macro_export]
macro_rules! __for_each_case {
    ($callback:ident ! ($($args:tt)*)) => {
        $crate::$callback! { ($($args)*)
            basic { get_of_missing_key_is_none, set_then_get_round_trips }
        }
    };
}
