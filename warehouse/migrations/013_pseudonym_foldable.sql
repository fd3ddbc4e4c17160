-- 013_pseudonym_foldable (issue 17): the same ops.pseudonym as migration 011, same values, with the key
-- check in its own CASE branch. In 011, coalesce(getvariable(..), error(..)) inside ops.hmac_pad is not
-- foldable, so DuckDB rebuilt both HMAC pads on every row (0.18 ms per row, about 70x the folded cost):
-- a full rebuild of hot_content and response_times at 100x took 235 s instead of about 50 s.
-- Still fails loudly in a session without the key (SECURITY.md "Privacy keys").
create or replace macro ops.pseudonym(src, uid) as
    case
        when uid is null then null
        when getvariable('pulse_pseudonym_key') is null
            then error('privacy key not loaded in this session (warehouse.db.migrate loads it; SECURITY.md "Privacy keys")')
        else 'u_' || left(sha256(
            ops.hmac_pad(getvariable('pulse_pseudonym_key'), 92)
            || unhex(sha256(
                ops.hmac_pad(getvariable('pulse_pseudonym_key'), 54)
                || encode(src || chr(31) || uid)))), 12)
    end;
