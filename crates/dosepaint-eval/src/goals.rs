//! Clinical goals as data: "PTV D95 >= 66.5 Gy", "parotid mean < 26 Gy",
//! "cord max < 45 Gy", "lung V20Gy < 30 %", evaluated to pass/fail with
//! their value.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use dosepaint_core::{Structure, Volume};
use serde::{Deserialize, Serialize};

use crate::{DoseSample, Dvh, Error, Result};

/// A dose-volume metric of one structure.
///
/// Written (and read, case-insensitively) as:
///
/// | metric | text | value unit |
/// |---|---|---|
/// | `D_x%`: minimum dose to the hottest x % | `D95`, `D95%` | Gy |
/// | `D_x cc`: minimum dose to the hottest x cm^3 | `D2cc`, `D0.03cc` | Gy |
/// | `V_x Gy` relative: % of the volume receiving >= x Gy | `V20Gy%`, `V20Gy[%]` | % |
/// | `V_x Gy` absolute: cm^3 receiving >= x Gy | `V20Gycc`, `V20Gy[cc]` | cm^3 |
/// | mean, maximum, minimum dose | `mean`, `max`, `min` (or `Dmean`, `Dmax`, `Dmin`) | Gy |
/// | gEUD with exponent a | `gEUD(-10)`, `gEUD(a=-10)` | Gy |
///
/// In a [`ClinicalGoal`], `V20Gy` may omit the unit: the goal's value field
/// (`value_percent` or `value_cc`) says which one is meant.
///
/// ```
/// use dosepaint_eval::Metric;
/// let m: Metric = "D95".parse()?;
/// assert_eq!(m, Metric::DosePercent(95.0));
/// assert_eq!("V20Gy[cc]".parse::<Metric>()?, Metric::VolumeCc(20.0));
/// assert_eq!(Metric::Geud(-10.0).to_string(), "gEUD(-10)");
/// # Ok::<(), dosepaint_eval::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
#[non_exhaustive]
pub enum Metric {
    /// `D_x%` with `x` in `[0, 100]`, Gy.
    DosePercent(f64),
    /// `D_x cc` with `x >= 0` cm^3, Gy.
    DoseCc(f64),
    /// `V_x Gy` as % of the structure volume.
    VolumePercent(f64),
    /// `V_x Gy` in cm^3.
    VolumeCc(f64),
    /// Volume-weighted mean dose, Gy.
    Mean,
    /// Maximum dose, Gy.
    Max,
    /// Minimum dose, Gy.
    Min,
    /// gEUD with exponent `a`, Gy.
    Geud(f64),
}

/// The unit of a metric's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GoalUnit {
    /// Gray.
    Gy,
    /// Percent of the structure volume.
    Percent,
    /// Cubic centimetres.
    Cc,
}

impl fmt::Display for GoalUnit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GoalUnit::Gy => "Gy",
            GoalUnit::Percent => "%",
            GoalUnit::Cc => "cc",
        })
    }
}

impl Metric {
    /// The unit of the metric's value.
    pub fn unit(&self) -> GoalUnit {
        match self {
            Metric::VolumePercent(_) => GoalUnit::Percent,
            Metric::VolumeCc(_) => GoalUnit::Cc,
            _ => GoalUnit::Gy,
        }
    }

    /// Checks the metric's parameter.
    fn validate(self) -> Result<Self> {
        let bad = |reason: String| Err(Error::invalid(format!("metric {self}"), reason));
        match self {
            Metric::DosePercent(x) if !(0.0..=100.0).contains(&x) => {
                bad(format!("the volume {x} % is outside [0, 100]"))
            }
            Metric::DoseCc(x) if !(x.is_finite() && x >= 0.0) => {
                bad(format!("the volume {x} cm^3 must be finite and >= 0"))
            }
            Metric::VolumePercent(x) | Metric::VolumeCc(x) if !(x.is_finite() && x >= 0.0) => {
                bad(format!("the dose level {x} Gy must be finite and >= 0"))
            }
            Metric::Geud(a) if !a.is_finite() => bad(format!("the exponent a = {a} is not finite")),
            m => Ok(m),
        }
    }

    /// The metric's value for a structure, from its voxel doses (min, max,
    /// mean, gEUD) or its DVH (Dx, Vx; see [`Dvh`] for the conventions).
    ///
    /// # Errors
    /// A `D_x cc` larger than the structure, or a gEUD error.
    pub fn value(&self, sample: &DoseSample, dvh: &Dvh) -> Result<f64> {
        match *self {
            Metric::DosePercent(x) => dvh.dose_at_volume_percent(x),
            Metric::DoseCc(x) => dvh.dose_at_volume_cm3(x),
            Metric::VolumePercent(d) => dvh.volume_percent_at_dose(d),
            Metric::VolumeCc(d) => dvh.volume_cm3_at_dose(d),
            Metric::Mean => Ok(sample.mean_gy()),
            Metric::Max => Ok(sample.max_gy()),
            Metric::Min => Ok(sample.min_gy()),
            Metric::Geud(a) => sample.geud_gy(a),
        }
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Metric::DosePercent(x) => write!(f, "D{x}%"),
            Metric::DoseCc(x) => write!(f, "D{x}cc"),
            Metric::VolumePercent(d) => write!(f, "V{d}Gy[%]"),
            Metric::VolumeCc(d) => write!(f, "V{d}Gy[cc]"),
            Metric::Mean => f.write_str("mean"),
            Metric::Max => f.write_str("max"),
            Metric::Min => f.write_str("min"),
            Metric::Geud(a) => write!(f, "gEUD({a})"),
        }
    }
}

/// A metric as written, before the unit of a bare `V_x Gy` is known.
#[derive(Clone, Copy)]
enum ParsedMetric {
    Known(Metric),
    /// `V_x Gy` without `%` or `cc`.
    VolumeAt(f64),
}

fn parse_number(s: &str, text: &str) -> Result<f64> {
    s.trim().parse::<f64>().map_err(|_| Error::InvalidGoal {
        goal: text.to_string(),
        reason: format!("`{s}` is not a number"),
    })
}

fn parse_metric(text: &str) -> Result<ParsedMetric> {
    let t = text.trim();
    let lower = t.to_ascii_lowercase();
    let unknown = || Error::InvalidGoal {
        goal: text.to_string(),
        reason: "unknown metric; use Dx, Dx%, Dxcc, VxGy[%], VxGy[cc], mean, max, min or gEUD(a)"
            .into(),
    };
    let metric = match lower.as_str() {
        "mean" | "dmean" => ParsedMetric::Known(Metric::Mean),
        "max" | "dmax" => ParsedMetric::Known(Metric::Max),
        "min" | "dmin" => ParsedMetric::Known(Metric::Min),
        _ => {
            if let Some(rest) = lower.strip_prefix("geud") {
                let inner = rest
                    .trim()
                    .strip_prefix('(')
                    .and_then(|r| r.strip_suffix(')'))
                    .ok_or_else(unknown)?;
                let inner = inner.trim();
                let inner = inner
                    .strip_prefix("a")
                    .map_or(inner, |r| r.trim_start().strip_prefix('=').unwrap_or(r));
                ParsedMetric::Known(Metric::Geud(parse_number(inner, text)?))
            } else if let Some(rest) = lower.strip_prefix('d') {
                if let Some(x) = rest.strip_suffix("cc") {
                    ParsedMetric::Known(Metric::DoseCc(parse_number(x, text)?))
                } else {
                    let x = rest.strip_suffix('%').unwrap_or(rest);
                    ParsedMetric::Known(Metric::DosePercent(parse_number(x, text)?))
                }
            } else if let Some(rest) = lower.strip_prefix('v') {
                let (body, unit) =
                    if let Some(b) = rest.strip_suffix("[%]").or_else(|| rest.strip_suffix('%')) {
                        (b, Some(GoalUnit::Percent))
                    } else if let Some(b) = rest
                        .strip_suffix("[cc]")
                        .or_else(|| rest.strip_suffix("cc"))
                    {
                        (b, Some(GoalUnit::Cc))
                    } else {
                        (rest, None)
                    };
                let dose = body
                    .trim()
                    .strip_suffix("gy")
                    .ok_or_else(|| Error::InvalidGoal {
                        goal: text.to_string(),
                        reason: "a volume metric names its dose level in Gy, e.g. V20Gy".into(),
                    })?;
                let d = parse_number(dose, text)?;
                match unit {
                    Some(GoalUnit::Percent) => ParsedMetric::Known(Metric::VolumePercent(d)),
                    Some(GoalUnit::Cc) => ParsedMetric::Known(Metric::VolumeCc(d)),
                    _ => ParsedMetric::VolumeAt(d),
                }
            } else {
                return Err(unknown());
            }
        }
    };
    if let ParsedMetric::Known(m) = metric {
        m.validate()?;
    }
    Ok(metric)
}

impl FromStr for Metric {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match parse_metric(s)? {
            ParsedMetric::Known(m) => Ok(m),
            ParsedMetric::VolumeAt(_) => Err(Error::InvalidGoal {
                goal: s.to_string(),
                reason: "say whether the volume is relative or absolute: VxGy[%] or VxGy[cc]"
                    .into(),
            }),
        }
    }
}

impl TryFrom<String> for Metric {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl From<Metric> for String {
    fn from(m: Metric) -> Self {
        m.to_string()
    }
}

/// How a metric's value is compared with the goal's threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Comparison {
    /// `value >= threshold`.
    #[serde(rename = ">=")]
    AtLeast,
    /// `value > threshold`.
    #[serde(rename = ">")]
    Above,
    /// `value <= threshold`.
    #[serde(rename = "<=")]
    AtMost,
    /// `value < threshold`.
    #[serde(rename = "<")]
    Below,
}

impl Comparison {
    /// Whether `value` satisfies the comparison with `threshold`.
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Comparison::AtLeast => value >= threshold,
            Comparison::Above => value > threshold,
            Comparison::AtMost => value <= threshold,
            Comparison::Below => value < threshold,
        }
    }

    fn symbol(self) -> &'static str {
        match self {
            Comparison::AtLeast => ">=",
            Comparison::Above => ">",
            Comparison::AtMost => "<=",
            Comparison::Below => "<",
        }
    }
}

impl FromStr for Comparison {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim() {
            ">=" | "=>" | "≥" => Ok(Comparison::AtLeast),
            ">" => Ok(Comparison::Above),
            "<=" | "=<" | "≤" => Ok(Comparison::AtMost),
            "<" => Ok(Comparison::Below),
            _ => Err(Error::InvalidGoal {
                goal: s.to_string(),
                reason: "the comparison must be one of >=, >, <=, <".into(),
            }),
        }
    }
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.symbol())
    }
}

/// A clinical goal: a metric of a named structure compared with a threshold.
///
/// Serde form (JSON, TOML...): the threshold sits in the field named after
/// its unit, `value_gy`, `value_percent` or `value_cc`, which must match the
/// metric; an optional `name` replaces the generated label.
///
/// ```
/// use dosepaint_eval::ClinicalGoal;
/// let goal: ClinicalGoal = toml::from_str(
///     r#"structure = "PTV"
///        metric = "D95"
///        op = ">="
///        value_gy = 66.5"#,
/// ).unwrap();
/// assert_eq!(goal.to_string(), "PTV D95% >= 66.5 Gy");
/// let same: ClinicalGoal = "PTV D95 >= 66.5 Gy".parse()?;
/// assert_eq!(goal, same);
/// let lung: ClinicalGoal = "Lung V20Gy < 30 %".parse()?;
/// assert_eq!(lung.metric(), dosepaint_eval::Metric::VolumePercent(20.0));
/// # Ok::<(), dosepaint_eval::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "GoalSpec", into = "GoalSpec")]
pub struct ClinicalGoal {
    structure: String,
    metric: Metric,
    op: Comparison,
    threshold: f64,
    name: Option<String>,
}

/// The serialised form of a [`ClinicalGoal`].
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct GoalSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    structure: String,
    metric: String,
    op: Comparison,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    value_gy: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    value_percent: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    value_cc: Option<f64>,
}

impl TryFrom<GoalSpec> for ClinicalGoal {
    type Error = Error;
    fn try_from(s: GoalSpec) -> Result<Self> {
        let text = format!("{} {} {}", s.structure, s.metric, s.op);
        let (value, unit) = match (s.value_gy, s.value_percent, s.value_cc) {
            (Some(v), None, None) => (v, GoalUnit::Gy),
            (None, Some(v), None) => (v, GoalUnit::Percent),
            (None, None, Some(v)) => (v, GoalUnit::Cc),
            _ => {
                return Err(Error::InvalidGoal {
                    goal: text,
                    reason: "give exactly one of value_gy, value_percent, value_cc".into(),
                });
            }
        };
        let metric = resolve(parse_metric(&s.metric)?, unit, &text)?;
        let mut goal = ClinicalGoal::new(s.structure, metric, s.op, value)?;
        goal.name = s.name.filter(|n| !n.trim().is_empty());
        Ok(goal)
    }
}

impl From<ClinicalGoal> for GoalSpec {
    fn from(g: ClinicalGoal) -> Self {
        let unit = g.metric.unit();
        GoalSpec {
            name: g.name,
            structure: g.structure,
            metric: g.metric.to_string(),
            op: g.op,
            value_gy: (unit == GoalUnit::Gy).then_some(g.threshold),
            value_percent: (unit == GoalUnit::Percent).then_some(g.threshold),
            value_cc: (unit == GoalUnit::Cc).then_some(g.threshold),
        }
    }
}

/// The metric, with a bare `V_x Gy` resolved by the unit of the value.
fn resolve(parsed: ParsedMetric, unit: GoalUnit, text: &str) -> Result<Metric> {
    let metric = match parsed {
        ParsedMetric::VolumeAt(d) => match unit {
            GoalUnit::Percent => Metric::VolumePercent(d),
            GoalUnit::Cc => Metric::VolumeCc(d),
            GoalUnit::Gy => {
                return Err(Error::InvalidGoal {
                    goal: text.to_string(),
                    reason: "a volume metric is compared with a volume: give the value in % or cc, not Gy".into(),
                });
            }
        },
        ParsedMetric::Known(m) => m,
    };
    if metric.unit() != unit {
        return Err(Error::InvalidGoal {
            goal: text.to_string(),
            reason: format!(
                "metric {metric} has values in {}, but the threshold is given in {unit}",
                metric.unit()
            ),
        });
    }
    Ok(metric)
}

impl ClinicalGoal {
    /// A goal `structure metric op threshold` (threshold in the metric's
    /// unit, see [`Metric::unit`]).
    ///
    /// # Errors
    /// An empty structure name, an invalid metric parameter, or a threshold
    /// that is not finite.
    pub fn new(
        structure: impl Into<String>,
        metric: Metric,
        op: Comparison,
        threshold: f64,
    ) -> Result<Self> {
        let structure = structure.into();
        let text = format!("{structure} {metric} {op} {threshold} {}", metric.unit());
        if structure.trim().is_empty() {
            return Err(Error::InvalidGoal {
                goal: text,
                reason: "the structure name is empty".into(),
            });
        }
        metric.validate()?;
        if !threshold.is_finite() {
            return Err(Error::InvalidGoal {
                goal: text,
                reason: "the threshold is not finite".into(),
            });
        }
        Ok(Self {
            structure,
            metric,
            op,
            threshold,
            name: None,
        })
    }

    /// The same goal with a display name.
    #[must_use]
    pub fn named(mut self, name: impl Into<String>) -> Self {
        let name = name.into();
        self.name = (!name.trim().is_empty()).then_some(name);
        self
    }

    /// The structure the goal is about.
    pub fn structure(&self) -> &str {
        &self.structure
    }

    /// The metric.
    pub fn metric(&self) -> Metric {
        self.metric
    }

    /// The comparison.
    pub fn op(&self) -> Comparison {
        self.op
    }

    /// The threshold, in the metric's unit.
    pub fn threshold(&self) -> f64 {
        self.threshold
    }

    /// The display name: the one given, or the goal written out
    /// (`"PTV D95% >= 66.5 Gy"`).
    pub fn name(&self) -> String {
        self.name.clone().unwrap_or_else(|| self.to_string())
    }

    /// Evaluates the goal on a structure's sample and DVH.
    ///
    /// # Errors
    /// As [`Metric::value`].
    pub fn evaluate(&self, sample: &DoseSample, dvh: &Dvh) -> Result<GoalResult> {
        let value = self
            .metric
            .value(sample, dvh)
            .map_err(|e| Error::InvalidGoal {
                goal: self.name(),
                reason: e.to_string(),
            })?;
        Ok(GoalResult {
            name: self.name(),
            value,
            passed: self.op.holds(value, self.threshold),
        })
    }
}

impl fmt::Display for ClinicalGoal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let metric = match self.metric {
            // In a goal the unit of the threshold already says % or cc.
            Metric::VolumePercent(d) | Metric::VolumeCc(d) => format!("V{d}Gy"),
            m => m.to_string(),
        };
        write!(
            f,
            "{} {metric} {} {} {}",
            self.structure,
            self.op,
            self.threshold,
            self.metric.unit()
        )
    }
}

impl FromStr for ClinicalGoal {
    type Err = Error;
    /// Reads `"<structure> <metric> <op> <value> <unit>"`, e.g.
    /// `"PTV D95 >= 66.5 Gy"`, `"Spinal cord max < 45Gy"`,
    /// `"Lung V20Gy <= 1500 cc"`; the structure name may contain spaces.
    fn from_str(s: &str) -> Result<Self> {
        let bad = |reason: &str| Error::InvalidGoal {
            goal: s.to_string(),
            reason: reason.to_string(),
        };
        let tokens: Vec<&str> = s.split_whitespace().collect();
        let op_at = tokens
            .iter()
            .position(|t| t.parse::<Comparison>().is_ok())
            .ok_or_else(|| bad("no comparison (>=, >, <=, <) found"))?;
        if op_at < 2 {
            return Err(bad("expected `<structure> <metric> <op> <value> <unit>`"));
        }
        let structure = tokens[..op_at - 1].join(" ");
        let parsed = parse_metric(tokens[op_at - 1])?;
        let op: Comparison = tokens[op_at].parse()?;
        let rest = tokens[op_at + 1..].concat();
        let lower = rest.to_ascii_lowercase();
        let (number, unit) = if let Some(n) = lower.strip_suffix("gy") {
            (n, GoalUnit::Gy)
        } else if let Some(n) = lower.strip_suffix('%') {
            (n, GoalUnit::Percent)
        } else if let Some(n) = lower.strip_suffix("cc") {
            (n, GoalUnit::Cc)
        } else {
            return Err(bad("the value needs a unit: Gy, % or cc"));
        };
        let value = parse_number(number, s)?;
        let metric = resolve(parsed, unit, s)?;
        ClinicalGoal::new(structure, metric, op, value)
    }
}

/// The outcome of a clinical goal: its name, the metric's value (in the
/// metric's unit) and whether the goal is met.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GoalResult {
    /// The goal's display name.
    pub name: String,
    /// The metric's value.
    pub value: f64,
    /// Whether the goal is met.
    pub passed: bool,
}

/// A list of clinical goals, e.g. a protocol read from TOML as
/// `[[goals]]` tables.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClinicalGoals {
    /// The goals, evaluated in this order.
    pub goals: Vec<ClinicalGoal>,
}

impl ClinicalGoals {
    /// Evaluates every goal; see [`evaluate_goals`].
    ///
    /// # Errors
    /// As [`evaluate_goals`].
    pub fn evaluate(
        &self,
        dose: &Volume<f32>,
        structures: &[Structure],
        bin_width_gy: f64,
    ) -> Result<Vec<GoalResult>> {
        evaluate_goals(&self.goals, dose, structures, bin_width_gy)
    }
}

/// Evaluates `goals` on `dose`, finding each goal's structure by name among
/// `structures` (all on the dose grid). Each structure's sample and DVH (bin
/// width `bin_width_gy`) are computed once.
///
/// ```
/// use dosepaint_core::{Grid, Structure, StructureRole, Volume};
/// use dosepaint_eval::{evaluate_goals, ClinicalGoal, DEFAULT_BIN_WIDTH_GY};
/// let grid = Grid::new([10, 1, 1], [10.0; 3], [0.0; 3])?;
/// // Ten 1 cm^3 voxels at 1, 2, ..., 10 Gy.
/// let dose = Volume::from_fn(grid.clone(), |[i, _, _]| (i + 1) as f32);
/// let cord = Structure::new("cord", StructureRole::OrganAtRisk, Volume::filled(grid, true))?;
/// let goals: Vec<ClinicalGoal> = vec!["cord max < 45 Gy".parse()?, "cord mean < 5 Gy".parse()?];
/// let results = evaluate_goals(&goals, &dose, &[cord], DEFAULT_BIN_WIDTH_GY)?;
/// assert!(results[0].passed && (results[0].value - 10.0).abs() < 1e-6);
/// assert!(!results[1].passed && (results[1].value - 5.5).abs() < 1e-6);
/// # Ok::<(), dosepaint_eval::Error>(())
/// ```
///
/// # Errors
/// [`Error::UnknownStructure`] for a goal whose structure is not given,
/// and the errors of [`DoseSample::from_structure`], [`Dvh::new`] and
/// [`ClinicalGoal::evaluate`].
pub fn evaluate_goals(
    goals: &[ClinicalGoal],
    dose: &Volume<f32>,
    structures: &[Structure],
    bin_width_gy: f64,
) -> Result<Vec<GoalResult>> {
    let mut cache: HashMap<&str, (DoseSample, Dvh)> = HashMap::new();
    let mut results = Vec::with_capacity(goals.len());
    for goal in goals {
        let name = goal.structure();
        if !cache.contains_key(name) {
            let structure = structures
                .iter()
                .find(|s| s.name() == name)
                .ok_or_else(|| Error::UnknownStructure {
                    goal: goal.name(),
                    structure: name.to_string(),
                    available: structures
                        .iter()
                        .map(|s| format!("\"{}\"", s.name()))
                        .collect::<Vec<_>>()
                        .join(", "),
                })?;
            let sample = DoseSample::from_structure(dose, structure)?;
            let dvh = Dvh::new(&sample, bin_width_gy)?;
            cache.insert(name, (sample, dvh));
        }
        let (sample, dvh) = &cache[name];
        results.push(goal.evaluate(sample, dvh)?);
    }
    Ok(results)
}
