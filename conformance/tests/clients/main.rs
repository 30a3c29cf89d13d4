//! The API across NFS clients: every function instance is a process of its own on a mount of
//! its own of the EFS client model (`efs-model`), so each has its own attribute, name, listing
//! and data caches, as each Lambda execution environment is its own NFS client of EFS. Some
//! instances run with their clock shifted (libfaketime). Each scenario is one the store must
//! survive on EFS; each failed on store v2.
//!
//! A custom harness (`harness = false`, test_support::harness): the scenarios need root and FUSE;
//! where the model cannot run they report SKIPPED, never ok (`EFS_MODEL_REQUIRED=1` turns that
//! into a failure).

mod clocks;
mod damage;
mod failures;
mod history;
mod instance;
mod limits;
mod paging;
mod visibility;
mod world;

fn main() {
    if instance::is_instance() {
        instance::serve();
    }
    let precondition = test_support::harness::Precondition {
        unavailable: efs_model::unavailable(),
        required: efs_model::required(),
    };
    test_support::harness::run(
        &[
            (
                "a_first_delete_all_is_seen_at_once_by_a_client_that_cached_its_absence",
                visibility::a_first_delete_all_is_seen_at_once_by_a_client_that_cached_its_absence,
            ),
            (
                "the_first_messages_of_a_new_time_window_are_seen_at_once",
                visibility::the_first_messages_of_a_new_time_window_are_seen_at_once,
            ),
            (
                "a_message_posted_through_a_is_read_and_listed_through_b_and_c_at_once",
                visibility::a_message_posted_through_a_is_read_and_listed_through_b_and_c_at_once,
            ),
            (
                "a_leaf_created_after_b_listed_its_parent_is_seen_at_once",
                visibility::a_leaf_created_after_b_listed_its_parent_is_seen_at_once,
            ),
            (
                "a_tailing_reader_sees_every_acknowledged_post_exactly_once",
                paging::a_tailing_reader_sees_every_acknowledged_post_exactly_once,
            ),
            (
                "messages_deleted_one_by_one_leave_no_cost_behind",
                history::messages_deleted_one_by_one_leave_no_cost_behind,
            ),
            (
                "reclaiming_through_c_while_b_reads_what_it_removes",
                history::reclaiming_through_c_while_b_reads_what_it_removes,
            ),
            (
                "reclaiming_goes_past_what_it_cannot_remove",
                history::reclaiming_goes_past_what_it_cannot_remove,
            ),
            (
                "a_delete_all_whose_lock_holder_froze_still_answers",
                history::a_delete_all_whose_lock_holder_froze_still_answers,
            ),
            (
                "a_page_of_1000_from_a_sparse_store_fits_lambdas_open_file_limit",
                limits::a_page_of_1000_from_a_sparse_store_fits_lambdas_open_file_limit,
            ),
            (
                "a_page_stays_within_lambdas_response_limit",
                limits::a_page_stays_within_lambdas_response_limit,
            ),
            (
                "a_page_of_large_messages_stays_within_the_functions_memory",
                limits::a_page_of_large_messages_stays_within_the_functions_memory,
            ),
            (
                "a_cut_off_never_hides_an_acknowledged_post_whatever_the_clocks",
                clocks::a_cut_off_never_hides_an_acknowledged_post_whatever_the_clocks,
            ),
            (
                "an_undecodable_file_costs_one_message_not_the_listing",
                damage::an_undecodable_file_costs_one_message_not_the_listing,
            ),
            (
                "a_stale_answer_is_confirmed_never_believed",
                damage::a_stale_answer_is_confirmed_never_believed,
            ),
            (
                "a_post_that_could_not_read_the_cut_off_stores_nothing",
                failures::a_post_that_could_not_read_the_cut_off_stores_nothing,
            ),
            (
                "a_post_too_slow_to_publish_takes_its_message_back",
                failures::a_post_too_slow_to_publish_takes_its_message_back,
            ),
        ],
        precondition,
    )
}
