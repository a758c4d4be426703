//! Dose painting by numbers: a dose per voxel from an image value through a
//! linear (Bentzen 2005), sigmoid or piecewise-linear curve, and multi-image
//! risk maps.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, dose, finite, non_negative};
use crate::image::{ImageSource, Level, Prepared, prepare, resolve_levels};
use crate::inputs::MappingInputs;
use crate::mapping::{DoseMap, DoseMapping, MappingReport, Painting, map_via_paint};
use crate::spec::MappingSpec;

/// Linear dose painting by numbers (Bentzen 2005, Lancet Oncol 6:112):
///
/// `D(I) = D_low + (I - I_low) / (I_high - I_low) (D_high - D_low)` for
/// `I_low <= I <= I_high`, `D_low` below `I_low` and `D_high` above `I_high`.
///
/// `D_high < D_low` gives a decreasing map (e.g. for ADC, where low
/// diffusivity means high cellularity). `i_high` must exceed `i_low`.
///
/// ```
/// use dosepaint_biomap::linear_dose;
/// // FMISO TBR 1.2 -> 70 Gy, 2.0 -> 84 Gy: TBR 1.6 gets 77 Gy.
/// assert!((linear_dose(1.6, 1.2, 2.0, 70.0, 84.0) - 77.0).abs() < 1e-12);
/// assert_eq!(linear_dose(0.9, 1.2, 2.0, 70.0, 84.0), 70.0);
/// assert_eq!(linear_dose(3.0, 1.2, 2.0, 70.0, 84.0), 84.0);
/// ```
#[inline]
pub fn linear_dose(i: f64, i_low: f64, i_high: f64, d_low: f64, d_high: f64) -> f64 {
    if i <= i_low {
        d_low
    } else if i >= i_high {
        d_high
    } else {
        d_low + (i - i_low) / (i_high - i_low) * (d_high - d_low)
    }
}

/// Sigmoid dose painting:
/// `D(I) = D_low + (D_high - D_low) / (1 + exp(-(I - I_50) / w))`.
///
/// `w > 0` rises with `I`, `w < 0` falls; `I_50` gets the mid dose.
///
/// ```
/// use dosepaint_biomap::sigmoid_dose;
/// assert!((sigmoid_dose(1.5, 1.5, 0.1, 70.0, 84.0) - 77.0).abs() < 1e-12);
/// assert!(sigmoid_dose(3.0, 1.5, 0.1, 70.0, 84.0) > 83.99);
/// ```
#[inline]
pub fn sigmoid_dose(i: f64, i_50: f64, width: f64, d_low: f64, d_high: f64) -> f64 {
    let z = (i - i_50) / width;
    // exp(-z) overflows to +inf for z << 0, which gives D_low: no NaN.
    d_low + (d_high - d_low) / (1.0 + (-z).exp())
}

/// Piecewise-linear dose from a table of `(I, D)` points with strictly
/// increasing `I`: linear between points, constant beyond the ends.
///
/// ```
/// use dosepaint_biomap::piecewise_dose;
/// let table = [[1.0, 70.0], [1.4, 77.0], [2.0, 84.0]];
/// assert!((piecewise_dose(1.2, &table) - 73.5).abs() < 1e-12);
/// assert_eq!(piecewise_dose(0.0, &table), 70.0);
/// assert_eq!(piecewise_dose(5.0, &table), 84.0);
/// ```
pub fn piecewise_dose(i: f64, points: &[[f64; 2]]) -> f64 {
    let Some(first) = points.first() else {
        return f64::NAN;
    };
    if i <= first[0] {
        return first[1];
    }
    let last = points[points.len() - 1];
    if i >= last[0] {
        return last[1];
    }
    // First point with I > i; i lies in [points[k-1], points[k]).
    let k = points.partition_point(|p| p[0] <= i);
    let [x0, y0] = points[k - 1];
    let [x1, y1] = points[k];
    y0 + (i - x0) / (x1 - x0) * (y1 - y0)
}

/// Spec of a linear (Bentzen 2005) mapping. `i_low`/`i_high` are numbers or
/// statistics of the prepared image inside the target (e.g. `{"percentile": 95}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinearSpec {
    /// The image and its preparation.
    pub image: ImageSource,
    /// Image value that gets `d_low_gy` (and below).
    pub i_low: Level,
    /// Image value that gets `d_high_gy` (and above).
    pub i_high: Level,
    /// Dose at and below `i_low` (Gy, total course).
    pub d_low_gy: f64,
    /// Dose at and above `i_high` (Gy, total course).
    pub d_high_gy: f64,
    /// Dose to the base region outside the target (none: not prescribed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_dose_gy: Option<f64>,
    /// Dose floor inside the target (Gy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub floor_gy: Option<f64>,
    /// Dose cap inside the target (Gy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cap_gy: Option<f64>,
}

impl LinearSpec {
    /// A linear map `i_low -> d_low_gy`, `i_high -> d_high_gy` of `image`, with
    /// no base dose, floor or cap.
    pub fn new(
        image: ImageSource,
        i_low: impl Into<Level>,
        i_high: impl Into<Level>,
        d_low_gy: f64,
        d_high_gy: f64,
    ) -> Self {
        Self {
            image,
            i_low: i_low.into(),
            i_high: i_high.into(),
            d_low_gy,
            d_high_gy,
            base_dose_gy: None,
            floor_gy: None,
            cap_gy: None,
        }
    }

    /// With a base dose to the base region outside the target.
    #[must_use]
    pub fn with_base_dose(mut self, gy: f64) -> Self {
        self.base_dose_gy = Some(gy);
        self
    }

    /// With a dose floor and cap inside the target.
    #[must_use]
    pub fn with_limits(mut self, floor_gy: Option<f64>, cap_gy: Option<f64>) -> Self {
        self.floor_gy = floor_gy;
        self.cap_gy = cap_gy;
        self
    }
}

/// Spec of a sigmoid mapping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigmoidSpec {
    /// The image and its preparation.
    pub image: ImageSource,
    /// Image value of the mid dose.
    pub i_50: Level,
    /// Width `w` in image units (non-zero; negative for a falling curve).
    pub width: f64,
    /// Dose for `I -> -inf` (`+inf` when `width < 0`) (Gy).
    pub d_low_gy: f64,
    /// Dose for `I -> +inf` (`-inf` when `width < 0`) (Gy).
    pub d_high_gy: f64,
    /// Dose to the base region outside the target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_dose_gy: Option<f64>,
    /// Dose floor inside the target (Gy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub floor_gy: Option<f64>,
    /// Dose cap inside the target (Gy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cap_gy: Option<f64>,
}

/// Spec of a user piecewise-linear table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PiecewiseSpec {
    /// The image and its preparation.
    pub image: ImageSource,
    /// `[I, D_gy]` points, `I` strictly increasing, at least two.
    pub points: Vec<[f64; 2]>,
    /// Dose to the base region outside the target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_dose_gy: Option<f64>,
    /// Dose floor inside the target (Gy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub floor_gy: Option<f64>,
    /// Dose cap inside the target (Gy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cap_gy: Option<f64>,
}

/// One image of a [`RiskMapSpec`]: its risk `r = (I - low) / (high - low)`,
/// clipped to `[0, 1]`, weighted by `weight`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RiskComponent {
    /// The image and its preparation.
    pub image: ImageSource,
    /// Value of no risk (`r = 0`).
    pub low: Level,
    /// Value of full risk (`r = 1`); below `low` for images where low values
    /// mean risk (ADC).
    pub high: Level,
    /// Weight (>= 0; the weights are normalised to sum to 1).
    pub weight: f64,
}

/// Several images combined into one risk map before the dose mapping:
/// `R = sum_i w_i r_i / sum_i w_i`, `D = D_low + R (D_high - D_low)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RiskMapSpec {
    /// The images and their weights.
    pub components: Vec<RiskComponent>,
    /// Dose at risk 0 (Gy).
    pub d_low_gy: f64,
    /// Dose at risk 1 (Gy).
    pub d_high_gy: f64,
    /// Dose to the base region outside the target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_dose_gy: Option<f64>,
    /// Dose floor inside the target (Gy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub floor_gy: Option<f64>,
    /// Dose cap inside the target (Gy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cap_gy: Option<f64>,
}

/// Checks the two end doses of a curve or risk map (`d_low_gy`, `d_high_gy`).
fn check_end_doses(what: &str, d_low_gy: f64, d_high_gy: f64) -> Result<()> {
    dose(&format!("{what} d_low_gy"), d_low_gy)?;
    dose(&format!("{what} d_high_gy"), d_high_gy)?;
    Ok(())
}

/// Checks a table of `[x, y]` points for [`piecewise_dose`]: at least two
/// points, every `x` finite and strictly increasing, every `y` accepted by
/// `check_y`. `table` names the table in errors, `x` and `y` its columns.
pub(crate) fn check_table(
    table: &str,
    x: &str,
    y: &str,
    points: &[[f64; 2]],
    check_y: fn(&str, f64) -> Result<f64>,
) -> Result<()> {
    if points.len() < 2 {
        return Err(Error::invalid(
            table,
            format!("needs at least 2 points, got {}", points.len()),
        ));
    }
    for (k, p) in points.iter().enumerate() {
        finite(&format!("{table} point {k} {x}"), p[0])?;
        check_y(&format!("{table} point {k} {y}"), p[1])?;
        if k > 0 && p[0] <= points[k - 1][0] {
            return Err(Error::invalid(
                table,
                format!(
                    "{x} must increase strictly: point {k} ({}) follows {}",
                    p[0],
                    points[k - 1][0]
                ),
            ));
        }
    }
    Ok(())
}

/// The image -> dose curve of a [`CurveMapping`].
#[derive(Debug, Clone)]
pub(crate) enum Curve {
    Linear {
        i_low: Level,
        i_high: Level,
        d_low: f64,
        d_high: f64,
    },
    Sigmoid {
        i_50: Level,
        width: f64,
        d_low: f64,
        d_high: f64,
    },
    Piecewise {
        points: Vec<[f64; 2]>,
    },
}

const LINEAR: &str = "linear mapping";
const SIGMOID: &str = "sigmoid mapping";
const PIECEWISE: &str = "piecewise mapping";

impl LinearSpec {
    /// Checks the spec (image, curve, then base dose, floor and cap) once.
    pub(crate) fn checked(&self) -> Result<(Curve, Painting)> {
        self.image.check()?;
        self.i_low.check(&format!("{LINEAR} i_low"))?;
        self.i_high.check(&format!("{LINEAR} i_high"))?;
        if let (Level::Value(lo), Level::Value(hi)) = (self.i_low, self.i_high)
            && lo >= hi
        {
            return Err(Error::invalid(
                format!("{LINEAR} levels"),
                format!("i_high ({hi}) must exceed i_low ({lo})"),
            ));
        }
        check_end_doses(LINEAR, self.d_low_gy, self.d_high_gy)?;
        let painting = Painting::new(self.base_dose_gy, self.floor_gy, self.cap_gy, LINEAR)?;
        Ok((
            Curve::Linear {
                i_low: self.i_low,
                i_high: self.i_high,
                d_low: self.d_low_gy,
                d_high: self.d_high_gy,
            },
            painting,
        ))
    }
}

impl SigmoidSpec {
    /// Checks the spec (image, curve, then base dose, floor and cap) once.
    pub(crate) fn checked(&self) -> Result<(Curve, Painting)> {
        self.image.check()?;
        self.i_50.check(&format!("{SIGMOID} i_50"))?;
        if !(self.width.is_finite() && self.width != 0.0) {
            return Err(Error::invalid(
                format!("{SIGMOID} width"),
                format!("{} must be finite and non-zero", self.width),
            ));
        }
        check_end_doses(SIGMOID, self.d_low_gy, self.d_high_gy)?;
        let painting = Painting::new(self.base_dose_gy, self.floor_gy, self.cap_gy, SIGMOID)?;
        Ok((
            Curve::Sigmoid {
                i_50: self.i_50,
                width: self.width,
                d_low: self.d_low_gy,
                d_high: self.d_high_gy,
            },
            painting,
        ))
    }
}

impl PiecewiseSpec {
    /// Checks the spec (image, curve, then base dose, floor and cap) once.
    pub(crate) fn checked(&self) -> Result<(Curve, Painting)> {
        self.image.check()?;
        check_table(
            &format!("{PIECEWISE} table"),
            "image value",
            "dose",
            &self.points,
            dose,
        )?;
        let painting = Painting::new(self.base_dose_gy, self.floor_gy, self.cap_gy, PIECEWISE)?;
        Ok((
            Curve::Piecewise {
                points: self.points.clone(),
            },
            painting,
        ))
    }
}

/// A validated dose-painting-by-numbers mapping (linear, sigmoid, piecewise).
#[derive(Debug, Clone)]
pub(crate) struct CurveMapping {
    spec: MappingSpec,
    image: ImageSource,
    curve: Curve,
    painting: Painting,
}

impl CurveMapping {
    /// The mapping of `spec` (a linear, sigmoid or piecewise spec), its
    /// image, and what the spec's `checked` made of it.
    pub(crate) fn new(
        spec: &MappingSpec,
        image: &ImageSource,
        (curve, painting): (Curve, Painting),
    ) -> Self {
        Self {
            spec: spec.clone(),
            image: image.clone(),
            curve,
            painting,
        }
    }

    fn label(&self) -> String {
        let img = self.image.label();
        match &self.curve {
            Curve::Linear {
                i_low,
                i_high,
                d_low,
                d_high,
            } => format!("linear DPbN of {img}: {i_low} -> {d_low} Gy, {i_high} -> {d_high} Gy"),
            Curve::Sigmoid {
                i_50,
                d_low,
                d_high,
                ..
            } => format!("sigmoid DPbN of {img}: {d_low}-{d_high} Gy, midpoint {i_50}"),
            Curve::Piecewise { points } => {
                format!("piecewise DPbN of {img} ({} points)", points.len())
            }
        }
    }
}

impl DoseMapping for CurveMapping {
    map_via_paint!();

    fn paint(&self, inputs: &MappingInputs) -> Result<DoseMap> {
        let img = prepare(&self.image, inputs)?;
        let label = self.label();
        let target = inputs.target_indices();
        let painted = match &self.curve {
            Curve::Linear {
                i_low,
                i_high,
                d_low,
                d_high,
            } => {
                let [lo, hi] = resolve_levels([i_low, i_high], &img, target);
                if lo.partial_cmp(&hi) != Some(std::cmp::Ordering::Less) {
                    return Err(Error::invalid(
                        format!("{LINEAR} levels"),
                        format!(
                            "i_high ({i_high} = {hi}) must exceed i_low ({i_low} = {lo}) on \
                             image \"{}\"",
                            img.name
                        ),
                    ));
                }
                let (dl, dh) = (*d_low, *d_high);
                self.painting.paint(inputs, &label, |n, _| {
                    Ok(linear_dose(img.at(n), lo, hi, dl, dh))
                })?
            }
            Curve::Sigmoid {
                i_50,
                width,
                d_low,
                d_high,
            } => {
                let [mid] = resolve_levels([i_50], &img, target);
                let (w, dl, dh) = (*width, *d_low, *d_high);
                self.painting.paint(inputs, &label, |n, _| {
                    Ok(sigmoid_dose(img.at(n), mid, w, dl, dh))
                })?
            }
            Curve::Piecewise { points } => self
                .painting
                .paint(inputs, &label, |n, _| Ok(piecewise_dose(img.at(n), points)))?,
        };
        self.painting.finish(
            inputs,
            painted,
            label,
            serde_json::to_string(&self.spec)?,
            MappingReport::default(),
        )
    }

    fn describe(&self) -> String {
        self.label()
    }

    fn spec(&self) -> Option<MappingSpec> {
        Some(self.spec.clone())
    }
}

/// A validated risk-map mapping.
#[derive(Debug, Clone)]
pub(crate) struct RiskMapping {
    spec: RiskMapSpec,
    weights: Vec<f64>,
    painting: Painting,
}

impl RiskMapping {
    pub(crate) fn new(s: &RiskMapSpec) -> Result<Self> {
        if s.components.is_empty() {
            return Err(Error::invalid("risk map", "needs at least one component"));
        }
        let mut total = 0.0;
        for (k, c) in s.components.iter().enumerate() {
            c.image.check()?;
            c.low.check(&format!("risk map component {k} low"))?;
            c.high.check(&format!("risk map component {k} high"))?;
            total += non_negative(&format!("risk map component {k} weight"), c.weight)?;
        }
        if total.is_nan() || total <= 0.0 {
            return Err(Error::invalid(
                "risk map weights",
                "must sum to a positive number",
            ));
        }
        check_end_doses("risk map", s.d_low_gy, s.d_high_gy)?;
        Ok(Self {
            spec: s.clone(),
            weights: s.components.iter().map(|c| c.weight / total).collect(),
            painting: Painting::new(s.base_dose_gy, s.floor_gy, s.cap_gy, "risk map")?,
        })
    }

    fn label(&self) -> String {
        let parts: Vec<String> = self
            .spec
            .components
            .iter()
            .zip(&self.weights)
            .map(|(c, w)| format!("{w:.2} x {}", c.image.label()))
            .collect();
        format!(
            "risk map ({}) -> {}-{} Gy",
            parts.join(" + "),
            self.spec.d_low_gy,
            self.spec.d_high_gy
        )
    }
}

impl DoseMapping for RiskMapping {
    map_via_paint!();

    fn paint(&self, inputs: &MappingInputs) -> Result<DoseMap> {
        let target = inputs.target_indices();
        let mut parts: Vec<(Prepared<'_>, f64, f64, f64)> = Vec::new();
        for (k, (c, &w)) in self.spec.components.iter().zip(&self.weights).enumerate() {
            let img = prepare(&c.image, inputs)?;
            let [lo, hi] = resolve_levels([&c.low, &c.high], &img, target);
            if !(lo.is_finite() && hi.is_finite()) || lo.total_cmp(&hi).is_eq() {
                return Err(Error::invalid(
                    format!("risk map component {k} levels"),
                    format!("low ({lo}) and high ({hi}) must be finite and differ"),
                ));
            }
            parts.push((img, lo, hi, w));
        }
        let (dl, dh) = (self.spec.d_low_gy, self.spec.d_high_gy);
        let label = self.label();
        let painted = self.painting.paint(inputs, &label, |n, _| {
            let r: f64 = parts
                .iter()
                .map(|(img, lo, hi, w)| w * ((img.at(n) - lo) / (hi - lo)).clamp(0.0, 1.0))
                .sum();
            Ok(dl + r * (dh - dl))
        })?;
        self.painting.finish(
            inputs,
            painted,
            label,
            serde_json::to_string(&MappingSpec::RiskMap(self.spec.clone()))?,
            MappingReport::default(),
        )
    }

    fn describe(&self) -> String {
        self.label()
    }

    fn spec(&self) -> Option<MappingSpec> {
        Some(MappingSpec::RiskMap(self.spec.clone()))
    }
}
