#![allow(clippy::unwrap_used)]

use super::*;
use crate::autoscale::policy::Demand;

const EXAMPLE_COMMAND: &str = "$ cargo xtask autoscale simulate --policy deploy/scaling.toml --trace deploy/traces/example.csv --json";

fn committed_policy() -> Policy {
    policy_file::load(&crate::project::root().join(DEFAULT_POLICY)).unwrap()
}

fn example_changes() -> Vec<Change> {
    let rows = trace::load(&crate::project::root().join("deploy/traces/example.csv")).unwrap();
    simulate(&committed_policy(), &rows, None)
}

/// The output pasted in docs/scaling.md under the example command, line by line.
fn documented_output() -> Vec<String> {
    let doc = std::fs::read_to_string(crate::project::root().join("docs/scaling.md")).unwrap();
    let mut lines = doc
        .lines()
        .skip_while(|line| line.trim() != EXAMPLE_COMMAND);
    assert!(
        lines.next().is_some(),
        "docs/scaling.md must show `{EXAMPLE_COMMAND}` in a console block"
    );
    lines
        .take_while(|line| !line.starts_with("```"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_example_in_the_docs_is_what_the_simulator_prints() {
    let printed = json_lines(&example_changes()).unwrap();
    assert!(
        printed.len() >= 4,
        "the example should show several changes: {printed:?}"
    );
    assert_eq!(
        documented_output(),
        printed,
        "docs/scaling.md is out of step with the simulator: paste the output of the command again"
    );
}

#[test]
fn the_example_scales_both_services_out_and_back_in() {
    let changes = example_changes();
    for service in Service::ALL {
        let ups = changes
            .iter()
            .filter(|c| c.service == service && c.to > c.from)
            .count();
        let downs = changes
            .iter()
            .filter(|c| c.service == service && c.to < c.from)
            .count();
        assert!(ups > 0 && downs > 0, "{service}: {ups} up, {downs} down");
    }
}

#[test]
fn each_change_is_one_json_object_with_the_documented_keys_in_order() {
    let change = Change {
        t: 60.0,
        service: Service::Websocket,
        from: 2,
        to: 4,
        reason: "connections 1450/instance > target 1000: desired 5".to_owned(),
    };
    let fractional = Change {
        t: 7.5,
        ..change.clone()
    };
    assert_eq!(
        json_lines(&[change, fractional]).unwrap(),
        [
            r#"{"t":60,"service":"websocket","from":2,"to":4,"reason":"connections 1450/instance > target 1000: desired 5"}"#,
            r#"{"t":7.5,"service":"websocket","from":2,"to":4,"reason":"connections 1450/instance > target 1000: desired 5"}"#,
        ]
    );
}

#[test]
fn start_sets_the_initial_replicas_and_out_of_range_is_corrected_first() {
    let policy = committed_policy();
    let idle = Row {
        t: 0.0,
        service: Service::Api,
        demand: Demand {
            cpu_millicores: 700.0,
            memory_mib: 0.0,
            connections: 0.0,
        },
    };
    // 2 replicas at 70 % of the CPU limit: on target, no change.
    assert!(simulate(&policy, std::slice::from_ref(&idle), None).is_empty());
    let from_one = simulate(&policy, std::slice::from_ref(&idle), Some(1));
    assert_eq!((from_one[0].from, from_one[0].to), (1, 2));
    assert_eq!(from_one[0].reason, "current 1 below min=2");
    let from_forty = simulate(&policy, &[idle], Some(40));
    assert_eq!((from_forty[0].from, from_forty[0].to), (40, 10));
}

#[test]
fn the_table_has_a_row_per_change_or_says_there_was_none() {
    assert_eq!(table(&[]), "no changes\n");
    let text = table(&example_changes());
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap().split_whitespace().collect::<Vec<_>>(),
        ["t", "service", "from", "to", "reason"]
    );
    assert_eq!(lines.count(), example_changes().len());
}
