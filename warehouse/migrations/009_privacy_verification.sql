-- Erasure verification (issue 14): after forget-user compacts every file that held the data it
-- scans their bytes for the erased values; the outcome is recorded with the request (file
-- paths, numbers of values checked and not checkable, result; never the values themselves).
alter table ops.privacy_requests add column if not exists verification_json varchar;
