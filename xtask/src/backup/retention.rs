//! Which backups to keep, with the calendar semantics of restic's `forget` policy, so operators
//! can reason about `--keep-*` flags the way they already do for restic.
//!
//! Backups are walked newest first. `--keep-last N` keeps the N newest. Each calendar rule
//! (daily, weekly by ISO week, monthly by year and month) keeps the newest backup of each of the
//! last N periods that have at least one backup — periods without backups do not use up the
//! count. A backup kept by any rule is kept, with every rule that kept it as a reason. Periods are
//! taken in each backup's own recorded UTC offset, as restic does with its snapshot times.

use std::fmt;

use serde::Serialize;
use time::OffsetDateTime;

/// How many of each kind to keep; zero turns a rule off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    keep_last: u32,
    keep_daily: u32,
    keep_weekly: u32,
    keep_monthly: u32,
}

#[derive(Debug, thiserror::Error)]
#[error(
    "no keep rule given: pass at least one of --keep-last, --keep-daily, --keep-weekly or --keep-monthly with a \
     count above zero (pruning without a rule would delete every backup)"
)]
pub struct EmptyPolicy;

impl RetentionPolicy {
    pub fn new(
        keep_last: u32,
        keep_daily: u32,
        keep_weekly: u32,
        keep_monthly: u32,
    ) -> Result<Self, EmptyPolicy> {
        if keep_last == 0 && keep_daily == 0 && keep_weekly == 0 && keep_monthly == 0 {
            return Err(EmptyPolicy);
        }
        Ok(Self {
            keep_last,
            keep_daily,
            keep_weekly,
            keep_monthly,
        })
    }
}

/// Why a backup is kept; the wording is restic's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeepReason {
    Last,
    Daily,
    Weekly,
    Monthly,
}

impl fmt::Display for KeepReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Last => "last snapshot",
            Self::Daily => "daily snapshot",
            Self::Weekly => "weekly snapshot",
            Self::Monthly => "monthly snapshot",
        })
    }
}

/// A backup as retention sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub id: String,
    pub created: OffsetDateTime,
}

/// A backup and the rules that keep it (none: it is to be removed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub id: String,
    pub created: OffsetDateTime,
    pub reasons: Vec<KeepReason>,
}

/// Both lists newest first.
#[derive(Debug, Default)]
pub struct RetentionPlan {
    pub keep: Vec<Decision>,
    pub remove: Vec<Decision>,
}

/// A calendar rule: how many periods it may still keep and the last period it kept from.
struct Bucket {
    remaining: u32,
    period_of: fn(OffsetDateTime) -> i64,
    last_period: Option<i64>,
    reason: KeepReason,
}

impl Bucket {
    fn new(remaining: u32, period_of: fn(OffsetDateTime) -> i64, reason: KeepReason) -> Self {
        Self {
            remaining,
            period_of,
            last_period: None,
            reason,
        }
    }
}

fn day(at: OffsetDateTime) -> i64 {
    i64::from(at.year()) * 1000 + i64::from(at.ordinal())
}

/// ISO week with its ISO year: 2016-01-01 belongs to week 53 of 2015.
fn iso_week(at: OffsetDateTime) -> i64 {
    let (year, week, _) = at.to_iso_week_date();
    i64::from(year) * 100 + i64::from(week)
}

fn month(at: OffsetDateTime) -> i64 {
    i64::from(at.year()) * 100 + i64::from(u8::from(at.month()))
}

pub fn plan_retention(policy: &RetentionPolicy, backups: &[Candidate]) -> RetentionPlan {
    let mut newest_first: Vec<&Candidate> = backups.iter().collect();
    // Ties on time break on id so the plan does not depend on directory listing order.
    newest_first.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| b.id.cmp(&a.id)));

    let mut buckets = [
        Bucket::new(policy.keep_daily, day, KeepReason::Daily),
        Bucket::new(policy.keep_weekly, iso_week, KeepReason::Weekly),
        Bucket::new(policy.keep_monthly, month, KeepReason::Monthly),
    ];

    let mut plan = RetentionPlan::default();
    for (position, backup) in newest_first.into_iter().enumerate() {
        let mut reasons = Vec::new();
        if position < policy.keep_last as usize {
            reasons.push(KeepReason::Last);
        }
        for bucket in buckets.iter_mut().filter(|bucket| bucket.remaining > 0) {
            let period = (bucket.period_of)(backup.created);
            // Newest first, so the first backup seen in a period is that period's newest.
            if bucket.last_period != Some(period) {
                bucket.last_period = Some(period);
                bucket.remaining -= 1;
                reasons.push(bucket.reason);
            }
        }
        let decision = Decision {
            id: backup.id.clone(),
            created: backup.created,
            reasons,
        };
        if decision.reasons.is_empty() {
            plan.remove.push(decision);
        } else {
            plan.keep.push(decision);
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use time::macros::{datetime, time};
    use time::{Date, Duration, Month};

    use super::KeepReason::{Daily, Last, Monthly, Weekly};
    use super::*;

    fn policy(last: u32, daily: u32, weekly: u32, monthly: u32) -> RetentionPolicy {
        RetentionPolicy::new(last, daily, weekly, monthly).unwrap()
    }

    fn at(date: Date, hour: u8) -> Candidate {
        let created = date.with_time(time!(00:00)).assume_utc() + Duration::hours(i64::from(hour));
        Candidate {
            id: format!("{date}T{hour:02}"),
            created,
        }
    }

    fn date(year: i32, month: u8, day: u8) -> Date {
        Date::from_calendar_date(year, Month::try_from(month).unwrap(), day).unwrap()
    }

    /// One backup a day at `hour`, from `first` to `last` inclusive, skipping `gaps`.
    fn daily(first: Date, last: Date, hour: u8, gaps: &[Date]) -> Vec<Candidate> {
        let mut backups = Vec::new();
        let mut day = first;
        while day <= last {
            if !gaps.contains(&day) {
                backups.push(at(day, hour));
            }
            day = day.next_day().unwrap();
        }
        backups
    }

    fn kept(plan: &RetentionPlan) -> Vec<(String, Vec<KeepReason>)> {
        plan.keep
            .iter()
            .map(|decision| (decision.id.clone(), decision.reasons.clone()))
            .collect()
    }

    fn kept_ids(plan: &RetentionPlan) -> Vec<String> {
        plan.keep
            .iter()
            .map(|decision| decision.id.clone())
            .collect()
    }

    fn ids(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| (*name).to_owned()).collect()
    }

    #[test]
    fn empty_policy_is_refused_naming_the_flags() {
        let message = RetentionPolicy::new(0, 0, 0, 0).unwrap_err().to_string();
        for flag in [
            "--keep-last",
            "--keep-daily",
            "--keep-weekly",
            "--keep-monthly",
        ] {
            assert!(message.contains(flag), "{message}");
        }
    }

    #[test]
    fn no_backups_gives_an_empty_plan() {
        let plan = plan_retention(&policy(3, 3, 3, 3), &[]);
        assert!(plan.keep.is_empty() && plan.remove.is_empty());
    }

    #[test]
    fn keep_last_keeps_the_newest_regardless_of_input_order() {
        let mut backups = daily(date(2016, 1, 1), date(2016, 1, 10), 10, &[]);
        backups.reverse();
        backups.swap(2, 7);
        let plan = plan_retention(&policy(3, 0, 0, 0), &backups);
        assert_eq!(
            kept_ids(&plan),
            ids(&["2016-01-10T10", "2016-01-09T10", "2016-01-08T10"])
        );
        assert_eq!(plan.remove.len(), 7);
        assert_eq!(
            plan.remove[0].id, "2016-01-07T10",
            "removals are listed newest first too"
        );
    }

    #[test]
    fn keep_last_larger_than_the_list_keeps_everything() {
        let backups = daily(date(2016, 1, 1), date(2016, 1, 5), 10, &[]);
        let plan = plan_retention(&policy(100, 0, 0, 0), &backups);
        assert_eq!(plan.keep.len(), 5);
        assert!(plan.remove.is_empty());
    }

    #[test]
    fn three_years_of_daily_backups() {
        let backups = daily(date(2014, 1, 1), date(2016, 12, 31), 10, &[]);
        assert_eq!(backups.len(), 365 + 365 + 366);
        let plan = plan_retention(&policy(0, 7, 4, 12), &backups);
        let expected = vec![
            // 2016-12-31 is a Saturday in ISO week 52; the weekly rule then takes Sundays.
            ("2016-12-31T10", vec![Daily, Weekly, Monthly]),
            ("2016-12-30T10", vec![Daily]),
            ("2016-12-29T10", vec![Daily]),
            ("2016-12-28T10", vec![Daily]),
            ("2016-12-27T10", vec![Daily]),
            ("2016-12-26T10", vec![Daily]),
            ("2016-12-25T10", vec![Daily, Weekly]),
            ("2016-12-18T10", vec![Weekly]),
            ("2016-12-11T10", vec![Weekly]),
            ("2016-11-30T10", vec![Monthly]),
            ("2016-10-31T10", vec![Monthly]),
            ("2016-09-30T10", vec![Monthly]),
            ("2016-08-31T10", vec![Monthly]),
            ("2016-07-31T10", vec![Monthly]),
            ("2016-06-30T10", vec![Monthly]),
            ("2016-05-31T10", vec![Monthly]),
            ("2016-04-30T10", vec![Monthly]),
            ("2016-03-31T10", vec![Monthly]),
            ("2016-02-29T10", vec![Monthly]),
            ("2016-01-31T10", vec![Monthly]),
        ];
        let expected: Vec<_> = expected
            .into_iter()
            .map(|(id, reasons)| (id.to_owned(), reasons))
            .collect();
        assert_eq!(kept(&plan), expected);
        assert_eq!(plan.remove.len(), backups.len() - expected.len());
    }

    #[test]
    fn days_without_backups_do_not_use_up_the_daily_count() {
        let backups = daily(
            date(2016, 1, 1),
            date(2016, 1, 10),
            3,
            &[
                date(2016, 1, 3),
                date(2016, 1, 4),
                date(2016, 1, 6),
                date(2016, 1, 7),
                date(2016, 1, 8),
            ],
        );
        let plan = plan_retention(&policy(0, 3, 0, 0), &backups);
        assert_eq!(
            kept_ids(&plan),
            ids(&["2016-01-10T03", "2016-01-09T03", "2016-01-05T03"])
        );
    }

    #[test]
    fn several_backups_a_day_keep_only_each_days_newest() {
        let mut backups = Vec::new();
        for day in 1..=5 {
            for hour in [2, 10, 18] {
                backups.push(at(date(2016, 3, day), hour));
            }
        }
        let plan = plan_retention(&policy(2, 2, 0, 0), &backups);
        let expected = vec![
            ("2016-03-05T18".to_owned(), vec![Last, Daily]),
            ("2016-03-05T10".to_owned(), vec![Last]),
            ("2016-03-04T18".to_owned(), vec![Daily]),
        ];
        assert_eq!(kept(&plan), expected);
    }

    #[test]
    fn weeks_are_iso_weeks_across_the_new_year() {
        // 2015-12-31 through 2016-01-03 are all in ISO week 53 of 2015.
        let backups = daily(date(2015, 12, 21), date(2016, 1, 12), 12, &[]);
        let plan = plan_retention(&policy(0, 0, 3, 0), &backups);
        assert_eq!(
            kept_ids(&plan),
            ids(&["2016-01-12T12", "2016-01-10T12", "2016-01-03T12"])
        );
        assert!(
            plan.keep
                .iter()
                .all(|decision| decision.reasons == vec![Weekly])
        );
    }

    #[test]
    fn months_follow_the_calendar_across_years_and_skip_empty_months() {
        let mut backups = daily(date(2015, 10, 1), date(2015, 10, 20), 9, &[]);
        backups.extend(daily(date(2015, 12, 5), date(2016, 2, 3), 9, &[]));
        let plan = plan_retention(&policy(0, 0, 0, 4), &backups);
        // November 2015 has no backup and does not count towards the four months.
        assert_eq!(
            kept_ids(&plan),
            ids(&[
                "2016-02-03T09",
                "2016-01-31T09",
                "2015-12-31T09",
                "2015-10-20T09"
            ])
        );
    }

    #[test]
    fn rules_overlap_instead_of_adding_up() {
        let backups = daily(date(2016, 5, 1), date(2016, 5, 31), 22, &[]);
        let plan = plan_retention(&policy(1, 1, 1, 1), &backups);
        assert_eq!(
            kept(&plan),
            vec![(
                "2016-05-31T22".to_owned(),
                vec![Last, Daily, Weekly, Monthly]
            )]
        );
        assert_eq!(plan.remove.len(), 30);
    }

    #[test]
    fn periods_use_the_recorded_utc_offset() {
        // 23:30 on 1 March at UTC-5 is already 2 March in UTC; restic buckets by the recorded local date.
        let late_evening = Candidate {
            id: "late".to_owned(),
            created: datetime!(2016-03-01 23:30 -5),
        };
        let next_morning = Candidate {
            id: "morning".to_owned(),
            created: datetime!(2016-03-02 08:00 -5),
        };
        let plan = plan_retention(&policy(0, 2, 0, 0), &[late_evening, next_morning]);
        assert_eq!(kept_ids(&plan), ids(&["morning", "late"]));
    }
}
