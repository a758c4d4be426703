//! Dose painting by numbers: a dose per voxel from an image value through a
//! linear (Bentzen 2005), sigmoid or piecewise-linear curve, and multi-image
//! risk maps.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, dose, finite, non_negative};
use crate::image::{ImageSource, Level, Prepared, prepare, resolve_levels};
use crate::inputs::MappingInputs;
use crate::mapping::{
    DoseMap, DoseMapping, Limits, MappingReport, check_base, finish, map_via_paint, paint_voxels,
};
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

#[derive(Debug, Clone)]
enum Curve {
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

/// A validated dose-painting-by-numbers mapping (linear, sigmoid, piecewise).
#[derive(Debug, Clone)]
pub(crate) struct CurveMapping {
    spec: MappingSpec,
    image: ImageSource,
    curve: Curve,
    base: Option<f64>,
    limits: Limits,
}

impl CurveMapping {
    pub(crate) fn linear(s: &LinearSpec) -> Result<Self> {
        s.image.check()?;
        s.i_low.check("linear mapping i_low")?;
        s.i_high.check("linear mapping i_high")?;
        if let (Level::Value(lo), Level::Value(hi)) = (s.i_low, s.i_high)
            && lo >= hi
        {
            return Err(Error::invalid(
                "linear mapping levels",
                format!("i_high ({hi}) must exceed i_low ({lo})"),
            ));
        }
        dose("linear mapping d_low_gy", s.d_low_gy)?;
        dose("linear mapping d_high_gy", s.d_high_gy)?;
        check_base(s.base_dose_gy, "linear mapping")?;
        Ok(Self {
            spec: MappingSpec::Linear(s.clone()),
            image: s.image.clone(),
            curve: Curve::Linear {
                i_low: s.i_low,
                i_high: s.i_high,
                d_low: s.d_low_gy,
                d_high: s.d_high_gy,
            },
            base: s.base_dose_gy,
            limits: Limits::new(s.floor_gy, s.cap_gy, "linear mapping")?,
        })
    }

    pub(crate) fn sigmoid(s: &SigmoidSpec) -> Result<Self> {
        s.image.check()?;
        s.i_50.check("sigmoid mapping i_50")?;
        if !(s.width.is_finite() && s.width != 0.0) {
            return Err(Error::invalid(
                "sigmoid mapping width",
                format!("{} must be finite and non-zero", s.width),
            ));
        }
        dose("sigmoid mapping d_low_gy", s.d_low_gy)?;
        dose("sigmoid mapping d_high_gy", s.d_high_gy)?;
        check_base(s.base_dose_gy, "sigmoid mapping")?;
        Ok(Self {
            spec: MappingSpec::Sigmoid(s.clone()),
            image: s.image.clone(),
            curve: Curve::Sigmoid {
                i_50: s.i_50,
                width: s.width,
                d_low: s.d_low_gy,
                d_high: s.d_high_gy,
            },
            base: s.base_dose_gy,
            limits: Limits::new(s.floor_gy, s.cap_gy, "sigmoid mapping")?,
        })
    }

    pub(crate) fn piecewise(s: &PiecewiseSpec) -> Result<Self> {
        s.image.check()?;
        if s.points.len() < 2 {
            return Err(Error::invalid(
                "piecewise mapping table",
                format!("needs at least 2 points, got {}", s.points.len()),
            ));
        }
        for (k, p) in s.points.iter().enumerate() {
            finite(&format!("piecewise mapping point {k} image value"), p[0])?;
            dose(&format!("piecewise mapping point {k} dose"), p[1])?;
            if k > 0 && p[0] <= s.points[k - 1][0] {
                return Err(Error::invalid(
                    "piecewise mapping table",
                    format!(
                        "image values must increase strictly: point {k} ({}) follows {}",
                        p[0],
                        s.points[k - 1][0]
                    ),
                ));
            }
        }
        check_base(s.base_dose_gy, "piecewise mapping")?;
        Ok(Self {
            spec: MappingSpec::Piecewise(s.clone()),
            image: s.image.clone(),
            curve: Curve::Piecewise {
                points: s.points.clone(),
            },
            base: s.base_dose_gy,
            limits: Limits::new(s.floor_gy, s.cap_gy, "piecewise mapping")?,
        })
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
                        "linear mapping levels",
                        format!(
                            "i_high ({i_high} = {hi}) must exceed i_low ({i_low} = {lo}) on \
                             image \"{}\"",
                            img.name
                        ),
                    ));
                }
                let (dl, dh) = (*d_low, *d_high);
                paint_voxels(inputs, self.base, self.limits, &label, |n, _| {
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
                paint_voxels(inputs, self.base, self.limits, &label, |n, _| {
                    Ok(sigmoid_dose(img.at(n), mid, w, dl, dh))
                })?
            }
            Curve::Piecewise { points } => {
                paint_voxels(inputs, self.base, self.limits, &label, |n, _| {
                    Ok(piecewise_dose(img.at(n), points))
                })?
            }
        };
        finish(
            inputs,
            painted,
            self.limits,
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
    limits: Limits,
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
        dose("risk map d_low_gy", s.d_low_gy)?;
        dose("risk map d_high_gy", s.d_high_gy)?;
        check_base(s.base_dose_gy, "risk map")?;
        Ok(Self {
            spec: s.clone(),
            weights: s.components.iter().map(|c| c.weight / total).collect(),
            limits: Limits::new(s.floor_gy, s.cap_gy, "risk map")?,
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
        let painted = paint_voxels(
            inputs,
            self.spec.base_dose_gy,
            self.limits,
            &label,
            |n, _| {
                let r: f64 = parts
                    .iter()
                    .map(|(img, lo, hi, w)| w * ((img.at(n) - lo) / (hi - lo)).clamp(0.0, 1.0))
                    .sum();
                Ok(dl + r * (dh - dl))
            },
        )?;
        finish(
            inputs,
            painted,
            self.limits,
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
