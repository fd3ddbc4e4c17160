-- 002_model_quality: how well each toxicity model fits labelled data, and its identity-term bias.
-- Written by `pulse moderation evaluate|bias-audit --record` and the model_training DAG; published
-- to the serving snapshot for the "Model quality" dashboard page. Timestamps are naive UTC.

-- One row per evaluation and subset ('all', or a value of the --by column such as a source).
create table if not exists moderation.model_evaluations (
    evaluation_id varchar not null,
    subset varchar not null,
    evaluated_at timestamp not null,
    model_id varchar not null, model_version varchar, backend varchar, is_fallback boolean,
    dataset varchar not null, dataset_sha256 varchar,
    score_label varchar not null,          -- which model label was scored against the 0/1 labels
    n bigint not null, n_positive bigint not null,
    roc_auc double, pr_auc double,         -- null when only one class is present
    precision double, recall double, f1 double, macro_f1 double,
    threshold double not null,             -- predicted positive: score >= threshold
    best_f1_threshold double,
    ece double,                            -- expected calibration error (Naeini et al. 2015; Guo et al. 2017)
    texts_per_second double,
    primary key (evaluation_id, subset)
);

-- One row per audit and identity subgroup (Borkan et al. 2019 metrics).
create table if not exists moderation.bias_audit (
    audit_id varchar not null,
    audited_at timestamp not null,
    model_id varchar not null, model_version varchar, is_fallback boolean,
    dataset varchar not null, dataset_sha256 varchar, score_label varchar not null,
    subgroup varchar not null, terms varchar[] not null,
    n_subgroup bigint not null, n_subgroup_positive bigint not null, n_subgroup_negative bigint not null,
    subgroup_auc double, bpsn_auc double, bnsp_auc double,   -- null: too few texts or one class only
    subgroup_fpr double,                   -- false-positive rate on non-toxic texts mentioning the subgroup
    background_fpr double,                 -- ... on non-toxic texts that do not
    threshold double not null,
    overall_auc double, final_metric double,
    primary key (audit_id, subgroup)
);
