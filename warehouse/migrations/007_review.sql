-- 007_review: language of each text, for routing items the active model cannot read.
-- Detected once per content_hash (lingua-language-detector) in the score step; an edit changes
-- the hash and the text is detected again. language is an ISO 639-1 code ('en', 'de', ...) or
-- 'und' (undetermined: too short, or no language reached the detector's minimum confidence).
create table if not exists moderation.languages (
    content_hash varchar primary key,
    language varchar not null,         -- ISO 639-1, or 'und'
    confidence double not null,        -- lingua's confidence in that language, 0-1 (0 for 'und')
    detector varchar not null,         -- e.g. 'lingua-2.1.1:16-languages'
    detected_at timestamp not null     -- naive UTC
);

-- The language policy of the model that scored the current run (one row, replaced by the score
-- step): which languages it reads, and the least detector confidence for routing an item in
-- another language to human review ('language not supported by model').
create table if not exists moderation.language_policy (
    model_id varchar primary key,
    supported_languages varchar[] not null,   -- ISO 639-1 codes, e.g. ['en']
    min_confidence double not null,           -- 0-1
    updated_at timestamp not null             -- naive UTC
);
