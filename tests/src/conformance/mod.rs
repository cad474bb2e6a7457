//! The backend conformance suite: every case is written once against the ports and run on
//! every backend (libSQL in memory, libSQL file, PostgreSQL). Each case gets a fresh,
//! migrated store and a [`ManualClock`]; after each case the audit chain must verify.

pub mod support;

mod audit;
mod concurrency;
mod oidc;
mod pairing;
mod passkeys;
mod provision;
mod quotas;
mod resources;
mod sessions;
mod tickets;
mod tokens;
mod users;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use ownership_core::ports::Store;
use ownership_core::quotas::Limits;
use ownership_store::ManualClock;

/// What a case receives.
pub struct Ctx<S> {
    /// The store under test (fresh, migrated).
    pub store: Arc<S>,
    /// Its clock.
    pub clock: Arc<ManualClock>,
    /// The quotas and budgets the store was built with.
    pub limits: Limits,
}

impl<S> Clone for Ctx<S> {
    fn clone(&self) -> Self {
        Self {
            store: Arc::clone(&self.store),
            clock: Arc::clone(&self.clock),
            limits: self.limits,
        }
    }
}

impl<S> Ctx<S> {
    /// The store's current time.
    pub fn clock_now(&self) -> time::OffsetDateTime {
        ownership_core::ports::Clock::now(&*self.clock)
    }
}

/// A boxed case future.
pub type CaseFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A named case, instantiated for one store type.
pub struct Case<S> {
    /// `area::name`.
    pub name: String,
    /// Runs it.
    pub run: fn(Ctx<S>) -> CaseFuture,
    /// The quotas and budgets its store is built with (the defaults, except for the
    /// cases that test them).
    pub limits: Limits,
}

macro_rules! register {
    ($out:ident, $module:ident: $($case:ident),* $(,)?) => {
        register!($out, Limits::default(), $module: $($case),*);
    };
    ($out:ident, $limits:expr, $module:ident: $($case:ident),* $(,)?) => {
        $(
            $out.push(Case {
                name: format!("{}::{}", stringify!($module), stringify!($case)),
                run: |ctx| Box::pin($module::$case(ctx)),
                limits: $limits,
            });
        )*
    };
}

/// Every case of the suite, for a store type.
pub fn cases<S: Store + 'static>() -> Vec<Case<S>> {
    let mut out = Vec::new();
    register!(out, users:
        bootstrap_creates_the_first_owner_once,
        legacy_token_is_idempotent_and_replaced_when_changed,
        create_user_issues_a_working_first_token,
        duplicate_user_is_a_conflict,
        a_taken_user_id_is_refused_alike,
        admin_cannot_create_or_manage_admins,
        missing_users_are_not_found,
        users_are_listed_in_pages,
        last_owner_is_never_demoted_suspended_or_deleted,
        nobody_changes_their_own_role,
        suspension_blocks_every_credential_until_resumed,
        role_change_shows_in_the_next_authentication,
        delete_user_removes_tokens_identities_and_secrets,
        a_demoted_admin_keeps_no_powers,
        a_demoted_owner_acts_with_the_role_held_now,
        a_suspended_or_deleted_admin_keeps_no_powers,
    );
    register!(out, tokens:
        issued_tokens_are_listed_newest_first_without_values,
        unknown_digest_is_not_authenticated,
        another_owners_token_is_not_found,
        expired_token_is_refused,
        lookup_tells_refusals_apart,
        rotation_without_grace_revokes_the_old_token_now,
        rotation_with_grace_keeps_the_old_token_until_it_ends,
        a_grace_past_the_cap_is_refused_alike,
        rotating_a_revoked_token_is_not_found,
        revoke_with_the_wrong_kind_changes_nothing,
        revoke_twice_is_harmless_and_audited_once,
        last_used_is_recorded_in_batches,
        foreign_tokens_are_reported,
        tokens_for_a_suspended_owner_are_not_issued,
        service_tokens_need_the_role_at_mint_time,
        a_rotation_never_revives_a_revoked_token,
        rotation_follows_the_minting_rules,
        what_a_token_mints_is_bound_by_its_expiry_and_revocation,
    );
    register!(out, pairing:
        request_is_idempotent_per_sender,
        redeem_binds_the_sender_and_consumes_the_code,
        expired_codes_are_not_found,
        unknown_and_wrong_channel_codes_are_not_found,
        binding_to_another_owner_is_a_conflict_that_consumes_nothing,
        approve_for_a_missing_or_suspended_owner_is_not_found,
        pending_requests_are_capped_per_channel,
        pending_list_is_per_channel_and_holds_no_codes,
        all_pending_is_every_channel_newest_first,
        burning_a_channel_deletes_its_pending_codes,
        unlink_only_reaches_the_callers_accounts,
        suspended_owners_do_not_resolve,
        blank_codes_are_rejected_before_the_store,
        the_stored_pairing_key_is_kept_once,
        a_colliding_candidate_falls_through_to_the_next,
        the_cap_asks_to_wait_whole_seconds_until_the_oldest_code_expires,
        approval_by_a_demoted_admin_is_forbidden,
        an_admin_binds_chat_accounts_only_to_those_they_manage,
    );
    register!(out, provision:
        tokens_map_to_users_and_roles,
        role_defaults_to_member,
        refusals_name_the_entry_never_the_token_and_write_nothing,
        reapplying_the_same_table_writes_nothing,
        a_removed_entry_is_refused_right_after_apply,
        a_role_change_and_a_kinds_change_apply,
        the_last_owner_is_never_demoted_by_a_table,
        a_token_colliding_with_a_stored_token_is_refused,
        provisioned_tokens_are_foreign_tokens,
        a_dry_run_writes_nothing,
        random_tables_converge,
    );
    register!(out, audit:
        every_mutation_is_audited_in_order,
        owners_read_their_own_events_and_admins_read_all,
        a_cursor_that_no_page_returned_is_refused,
        events_after_streams_oldest_first,
        an_edited_chain_is_detected,
        a_resumed_check_covers_what_was_appended,
        a_recreated_user_does_not_inherit_the_audit_trail,
        the_recorded_head_names_the_last_event,
    );
    register!(out, resources:
        secrets_are_scoped_to_their_owner,
        data_key_is_installed_once,
        resources_resolve_only_while_live,
        resources_need_existing_grants,
        webhook_endpoints_and_deliveries,
        deliveries_page_newest_first_ties_by_id,
        due_deliveries_are_taken_in_turns_and_can_be_held_back,
    );
    register!(out, quotas::small(), quotas:
        minting_stops_at_the_token_quota,
        service_tokens_count_against_their_owners_quota,
        secrets_stop_at_their_count_and_bytes,
        resources_stop_at_their_quota,
        concurrent_mints_never_exceed_the_token_quota,
        concurrent_secret_writes_never_exceed_the_quota,
        concurrent_resources_never_exceed_the_quota,
        wrong_codes_spend_the_users_budget_then_wait,
        the_channel_budget_burns_pending_codes_once_spent,
        concurrent_wrong_codes_are_evaluated_at_most_budget_times,
    );
    register!(out, tickets:
        a_ticket_works_once_and_expires,
        a_ticket_ends_with_its_token,
    );
    register!(out, sessions:
        a_session_reads_back_with_its_user_and_ends_at_sign_out,
        a_token_sign_in_names_its_token_and_others_do_not,
        idle_and_absolute_timeouts_end_sessions,
        last_seen_is_written_at_most_once_per_interval,
        sessions_are_bounded_per_user_oldest_first,
        suspension_and_deletion_end_a_users_sessions,
        a_rotated_token_moves_its_session,
        purging_deletes_only_sessions_that_are_over,
    );
    register!(out, oidc:
        admins_link_members_and_themselves_owners_link_anyone,
        sign_in_follows_the_link_or_a_verified_allow_listed_email,
        unlinking_ends_the_users_provider_sessions_only,
    );
    register!(out, passkeys:
        passkeys_are_registered_listed_and_removed_per_owner,
        a_user_keeps_a_bounded_number_of_passkeys,
        sign_in_records_the_counter_and_refuses_a_clone,
        suspended_or_deleted_users_passkeys_do_not_sign_in,
        removing_a_passkey_ends_the_users_passkey_sessions_only,
    );
    register!(out, concurrency:
        one_code_redeemed_by_32_clients_binds_once,
        thirty_two_requests_for_one_sender_share_one_code,
        sixteen_rotations_of_one_token_leave_one_successor,
        concurrent_mutations_never_fork_the_chain,
        revocation_racing_rotations_with_a_moving_clock_is_final,
        a_rotation_that_waited_for_the_lock_sees_the_revocation,
        a_tail_of_every_event_misses_none,
    );
    out
}
