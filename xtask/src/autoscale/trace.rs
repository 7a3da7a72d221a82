//! The demand traces `autoscale simulate` replays: CSV with the exact header
//! `t,service,cpu_millicores,memory_mib,connections`, one row per evaluation. `t` is in seconds and never
//! decreases; each figure is the service's TOTAL demand (≥ 0). Empty lines and lines starting with `#`
//! are ignored; fields are plain (no quoting). Errors name the line and the column.

use std::path::Path;

use anyhow::{Context, bail};

use super::policy::{Demand, Service};

pub const HEADER: &str = "t,service,cpu_millicores,memory_mib,connections";
const COLUMNS: [&str; 5] = [
    "t",
    "service",
    "cpu_millicores",
    "memory_mib",
    "connections",
];

#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub t: f64,
    pub service: Service,
    pub demand: Demand,
}

pub fn load(path: &Path) -> anyhow::Result<Vec<Row>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    parse(&name, &text)
}

/// `name` is how errors call the file.
pub fn parse(name: &str, text: &str) -> anyhow::Result<Vec<Row>> {
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, line)| (i + 1, line.trim()))
        .filter(|(_, line)| !line.is_empty() && !line.starts_with('#'));
    let Some((at, header)) = lines.next() else {
        bail!("{name}: empty trace (the first line must be the header {HEADER})");
    };
    if header != HEADER {
        bail!("{name} line {at}: the header must be exactly {HEADER}, got {header}");
    }
    let mut rows: Vec<Row> = Vec::new();
    for (at, line) in lines {
        let row = parse_row(line).map_err(|(column, problem)| match column {
            Some(column) => anyhow::anyhow!(
                "{name} line {at}, column {} ({}): {problem}",
                column + 1,
                COLUMNS[column]
            ),
            None => anyhow::anyhow!("{name} line {at}: {problem}"),
        })?;
        if let Some(previous) = rows.last()
            && row.t < previous.t
        {
            bail!(
                "{name} line {at}, column 1 (t): {} is before the previous row's {} (t must not decrease)",
                row.t,
                previous.t
            );
        }
        rows.push(row);
    }
    if rows.is_empty() {
        bail!("{name}: no rows after the header");
    }
    Ok(rows)
}

/// A row, or the column (0-based) and what is wrong with it.
fn parse_row(line: &str) -> Result<Row, (Option<usize>, String)> {
    let fields: Vec<&str> = line.split(',').map(str::trim).collect();
    if fields.len() != COLUMNS.len() {
        return Err((
            None,
            format!(
                "expected {} columns ({HEADER}), got {}",
                COLUMNS.len(),
                fields.len()
            ),
        ));
    }
    let number = |column: usize| -> Result<f64, (Option<usize>, String)> {
        let text = fields[column];
        match text.parse::<f64>() {
            Ok(value) if value.is_finite() && value >= 0.0 => Ok(value),
            Ok(_) => Err((Some(column), format!("{text} must be a finite number ≥ 0"))),
            Err(_) => Err((Some(column), format!("{text:?} is not a number"))),
        }
    };
    let service = Service::from_name(fields[1]).ok_or_else(|| {
        (
            Some(1),
            format!("{:?} is not a service (api, websocket)", fields[1]),
        )
    })?;
    Ok(Row {
        t: number(0)?,
        service,
        demand: Demand {
            cpu_millicores: number(2)?,
            memory_mib: number(3)?,
            connections: number(4)?,
        },
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn error_of(text: &str) -> String {
        format!("{:#}", parse("trace.csv", text).unwrap_err())
    }

    #[test]
    fn rows_parse_with_comments_and_blank_lines() {
        let rows = parse(
            "trace.csv",
            "# a ramp\n\nt,service,cpu_millicores,memory_mib,connections\n0,websocket,100,200,300\r\n# later\n15, api ,1.5,2,0\n",
        )
        .unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].service, Service::Websocket);
        assert_eq!(rows[0].demand.connections, 300.0);
        assert_eq!(rows[1].t, 15.0);
        assert_eq!(rows[1].service, Service::Api);
        assert_eq!(rows[1].demand.cpu_millicores, 1.5);
    }

    #[test]
    fn the_header_must_be_exact() {
        let err = error_of("t,service,cpu,memory_mib,connections\n0,api,1,1,0\n");
        assert!(
            err.contains("trace.csv line 1: the header must be exactly t,service,cpu_millicores,memory_mib,connections"),
            "{err}"
        );
        assert!(error_of("").contains("empty trace"));
        assert!(error_of(&format!("{HEADER}\n")).contains("no rows"));
    }

    #[test]
    fn errors_name_line_and_column() {
        for (row, expected) in [
            (
                "0,api,lots,1,0",
                "trace.csv line 2, column 3 (cpu_millicores): \"lots\" is not a number",
            ),
            (
                "0,edge,1,1,0",
                "trace.csv line 2, column 2 (service): \"edge\" is not a service (api, websocket)",
            ),
            (
                "0,api,1,-5,0",
                "trace.csv line 2, column 4 (memory_mib): -5 must be a finite number ≥ 0",
            ),
            (
                "0,api,1,1,inf",
                "trace.csv line 2, column 5 (connections): inf must be a finite number ≥ 0",
            ),
            (
                "x,api,1,1,0",
                "trace.csv line 2, column 1 (t): \"x\" is not a number",
            ),
            ("0,api,1,1", "trace.csv line 2: expected 5 columns"),
        ] {
            let err = error_of(&format!("{HEADER}\n{row}\n"));
            assert!(err.contains(expected), "{expected:?} missing from {err}");
        }
    }

    #[test]
    fn t_must_not_decrease() {
        let err = error_of(&format!(
            "{HEADER}\n30,api,1,1,0\n30,websocket,1,1,0\n\n15,api,1,1,0\n"
        ));
        assert!(
            err.contains("trace.csv line 5, column 1 (t): 15 is before the previous row's 30 (t must not decrease)"),
            "{err}"
        );
    }
}
