//! EQD2 and BED maps of a prescription, and adaptive re-prescription from the
//! dose delivered so far.

use dosepaint_core::{Grid, Prescription, Provenance, Volume};
use dosepaint_radiobio::{AlphaBeta, VoxelValues, isoeffective_total_dose};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::inputs::MappingInputs;
use crate::mapping::DoseMapping;

/// The alpha/beta ratio (Gy) of every voxel: uniform or a map on the grid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlphaBetaMap {
    /// The same alpha/beta everywhere (e.g. 10 Gy for head and neck tumours).
    Uniform(f64),
    /// One alpha/beta per voxel (Gy, > 0).
    PerVoxel(Box<Volume<f32>>),
}

impl AlphaBetaMap {
    /// The values on `grid`, checked.
    fn values(&self, grid: &Grid) -> Result<AbValues> {
        match self {
            AlphaBetaMap::Uniform(v) => {
                AlphaBeta::new(*v)?;
                Ok(AbValues::Uniform(*v))
            }
            AlphaBetaMap::PerVoxel(map) => {
                grid.ensure_same(map.grid(), "alpha/beta map vs the prescription grid")?;
                let values: Vec<f64> = map.as_slice().iter().map(|&v| f64::from(v)).collect();
                if let Some(n) = values.iter().position(|v| !(v.is_finite() && *v > 0.0)) {
                    return Err(Error::voxel(
                        "alpha/beta map",
                        grid.voxel_index(n),
                        format!("{} Gy must be finite and > 0", values[n]),
                    ));
                }
                Ok(AbValues::PerVoxel(values))
            }
        }
    }

    fn describe(&self) -> serde_json::Value {
        match self {
            AlphaBetaMap::Uniform(v) => serde_json::json!(v),
            AlphaBetaMap::PerVoxel(_) => serde_json::json!("per-voxel map"),
        }
    }
}

enum AbValues {
    Uniform(f64),
    PerVoxel(Vec<f64>),
}

impl AbValues {
    #[inline]
    fn at(&self, n: usize) -> f64 {
        match self {
            AbValues::Uniform(v) => *v,
            AbValues::PerVoxel(v) => v[n],
        }
    }

    fn as_radiobio(&self) -> VoxelValues<'_> {
        match self {
            AbValues::Uniform(v) => VoxelValues::Uniform(*v),
            AbValues::PerVoxel(v) => VoxelValues::PerVoxel(v),
        }
    }
}

/// EQD2 `= D (1 + d/(a/b)) / (1 + 2/(a/b))` of every voxel of a
/// prescription's target map (computed by `dosepaint-radiobio`).
///
/// ```
/// use dosepaint_biomap::{prescription_eqd2, AlphaBetaMap};
/// use dosepaint_core::{Grid, Prescription, Provenance, Volume};
/// let grid = Grid::new([2, 1, 1], [2.0; 3], [0.0; 3])?;
/// let rx = Prescription::new(Volume::from_vec(grid, vec![70.0f32, 84.0])?, 35, Provenance::default())?;
/// let eqd2 = prescription_eqd2(&rx, &AlphaBetaMap::Uniform(10.0))?;
/// // 70 Gy in 2 Gy fractions is 70 Gy EQD2; 84 Gy in 2.4 Gy fractions is 86.8 Gy.
/// assert!((eqd2.as_slice()[0] - 70.0).abs() < 1e-4);
/// assert!((eqd2.as_slice()[1] - 86.8).abs() < 1e-4);
/// # Ok::<(), dosepaint_biomap::Error>(())
/// ```
///
/// # Errors
/// An invalid alpha/beta (value or map, or a map on another grid).
pub fn prescription_eqd2(rx: &Prescription, alpha_beta: &AlphaBetaMap) -> Result<Volume<f32>> {
    convert(rx, alpha_beta, false)
}

/// BED `= D (1 + d/(a/b))` of every voxel of a prescription's target map.
///
/// # Errors
/// As [`prescription_eqd2`].
pub fn prescription_bed(rx: &Prescription, alpha_beta: &AlphaBetaMap) -> Result<Volume<f32>> {
    convert(rx, alpha_beta, true)
}

fn convert(rx: &Prescription, alpha_beta: &AlphaBetaMap, bed: bool) -> Result<Volume<f32>> {
    let ab = alpha_beta.values(rx.grid())?;
    let doses: Vec<f64> = rx
        .target_gy()
        .as_slice()
        .iter()
        .map(|&d| f64::from(d))
        .collect();
    let out = if bed {
        dosepaint_radiobio::to_bed(&doses, rx.fractions(), ab.as_radiobio())?
    } else {
        dosepaint_radiobio::to_eqd2(&doses, rx.fractions(), ab.as_radiobio())?
    };
    Ok(Volume::from_vec(
        rx.grid().clone(),
        out.into_iter().map(|v| v as f32).collect(),
    )?)
}

/// The dose delivered in the first fractions of a course.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Delivered {
    /// Physical dose summed over `fractions` fractions, assumed equal per
    /// fraction (`d = D / k`) in every voxel.
    Physical {
        /// Total delivered dose (Gy).
        dose_gy: Volume<f32>,
        /// Fractions delivered.
        fractions: u32,
    },
    /// Delivered EQD2 already accumulated fraction by fraction (for unequal
    /// daily doses).
    Eqd2 {
        /// Delivered EQD2 (Gy).
        eqd2_gy: Volume<f32>,
        /// Fractions delivered.
        fractions: u32,
    },
}

impl Delivered {
    fn fractions(&self) -> u32 {
        match self {
            Delivered::Physical { fractions, .. } | Delivered::Eqd2 { fractions, .. } => *fractions,
        }
    }

    fn volume(&self) -> &Volume<f32> {
        match self {
            Delivered::Physical { dose_gy, .. } => dose_gy,
            Delivered::Eqd2 { eqd2_gy, .. } => eqd2_gy,
        }
    }
}

/// What to do with prescribed voxels where the delivered dose already exceeds
/// the new intent (in EQD2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExcessPolicy {
    /// Return [`Error::DeliveredExceedsIntent`].
    #[default]
    Refuse,
    /// Prescribe nothing more there and list them in
    /// [`Adaptation::exceeded`].
    Report,
}

/// A prescribed voxel where the delivered dose exceeds the new intent.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ExceededVoxel {
    /// Voxel index `(i, j, k)`.
    pub voxel: [usize; 3],
    /// Intended EQD2 of the whole course (Gy).
    pub intended_eqd2_gy: f64,
    /// EQD2 already delivered (Gy).
    pub delivered_eqd2_gy: f64,
}

/// The prescription for the remaining fractions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Adaptation {
    /// Total physical dose over the remaining fractions, per voxel, with
    /// `fractions` = remaining fractions (and converted bounds if the intent
    /// had bounds).
    pub remaining: Prescription,
    /// Physical dose per remaining fraction (Gy).
    pub dose_per_fraction_gy: Volume<f32>,
    /// Prescribed voxels where the delivered dose already exceeds the intent
    /// (empty under [`ExcessPolicy::Refuse`]).
    pub exceeded: Vec<ExceededVoxel>,
}

/// Adaptive re-prescription: given the new intended prescription for the
/// whole course (`n` fractions, e.g. from a mid-treatment image) and the dose
/// delivered in the first `k` fractions, the physical dose for the remaining
/// `m = n - k` fractions that brings every prescribed voxel to the intended
/// EQD2:
///
/// `EQD2_rem = EQD2(D_new, n) - EQD2_delivered`,
/// `BED_rem = EQD2_rem (1 + 2/(a/b))`, and `D_rem` the positive root of
/// `D_rem (1 + D_rem / (m a/b)) = BED_rem` (`dosepaint-radiobio`'s
/// iso-effective dose). With an unchanged intent and delivery as planned, the
/// original dose per fraction comes back.
///
/// ```
/// use dosepaint_biomap::{represcribe, AlphaBetaMap, Delivered, ExcessPolicy};
/// use dosepaint_core::{Grid, Prescription, Provenance, Volume};
/// let grid = Grid::new([2, 1, 1], [2.0; 3], [0.0; 3])?;
/// let intent = Prescription::new(Volume::from_vec(grid.clone(), vec![70.0f32, 84.0])?, 35,
///                                Provenance::default())?;
/// // 10 of 35 fractions delivered exactly as planned.
/// let delivered = Volume::from_vec(grid, vec![20.0f32, 24.0])?;
/// let a = represcribe(&intent, &Delivered::Physical { dose_gy: delivered, fractions: 10 },
///                     &AlphaBetaMap::Uniform(10.0), ExcessPolicy::Refuse)?;
/// assert_eq!(a.remaining.fractions(), 25);
/// assert!((a.dose_per_fraction_gy.as_slice()[1] - 2.4).abs() < 1e-5);
/// # Ok::<(), dosepaint_biomap::Error>(())
/// ```
///
/// # Errors
/// Mismatched grids, delivered fractions not in `1..n`, a negative or
/// non-finite delivered dose, an invalid alpha/beta, voxels where the delivered
/// dose exceeds the intent under [`ExcessPolicy::Refuse`], or nothing left to
/// prescribe.
pub fn represcribe(
    intent: &Prescription,
    delivered: &Delivered,
    alpha_beta: &AlphaBetaMap,
    policy: ExcessPolicy,
) -> Result<Adaptation> {
    let grid = intent.grid();
    let n = intent.fractions();
    let k = delivered.fractions();
    if k == 0 || k >= n {
        return Err(Error::invalid(
            "delivered fractions",
            format!("{k} must be at least 1 and below the course's {n} fractions"),
        ));
    }
    let m = n - k;
    let del = delivered.volume();
    grid.ensure_same(del.grid(), "delivered dose vs the new intent")?;
    const CHUNK: usize = 1 << 16;
    if let Some(v) = del
        .as_slice()
        .par_chunks(CHUNK)
        .enumerate()
        .find_map_first(|(c, chunk)| {
            chunk
                .iter()
                .position(|d| !(d.is_finite() && *d >= 0.0))
                .map(|p| c * CHUNK + p)
        })
    {
        return Err(Error::voxel(
            "delivered dose",
            grid.voxel_index(v),
            format!("{} Gy must be finite and >= 0", del.as_slice()[v]),
        ));
    }
    let ab = alpha_beta.values(grid)?;
    let target = intent.target_gy().as_slice();
    let eqd2 =
        |d: f64, fx: u32, ab: f64| -> Result<f64> { Ok(dosepaint_radiobio::eqd2(d, fx, ab)?) };
    let delivered_eqd2 = |v: usize| -> Result<f64> {
        let d = f64::from(del.as_slice()[v]);
        match delivered {
            Delivered::Physical { .. } => eqd2(d, k, ab.at(v)),
            Delivered::Eqd2 { .. } => Ok(d),
        }
    };
    // EQD2 still to give -> physical total in m fractions.
    let remaining_dose = |eqd2_rem: f64, v: usize| -> Result<f64> {
        let a = ab.at(v);
        let bed = eqd2_rem.max(0.0) * (1.0 + 2.0 / a);
        Ok(isoeffective_total_dose(bed, m, AlphaBeta::new(a)?)?)
    };
    let nv = grid.n_voxels();
    let plane = grid.dims()[0] * grid.dims()[1];
    let mut out = vec![0.0f32; nv];
    // Parallel over slices; each voxel is independent and the exceeded voxels
    // are gathered in memory order.
    let parts: Vec<Result<Vec<ExceededVoxel>>> = out
        .par_chunks_mut(plane)
        .enumerate()
        .map(|(k, o)| {
            let mut exceeded = Vec::new();
            for (local, o) in o.iter_mut().enumerate() {
                let v = k * plane + local;
                let d = f64::from(target[v]);
                if d <= 0.0 {
                    continue;
                }
                let intended = eqd2(d, n, ab.at(v))?;
                let given = delivered_eqd2(v)?;
                if given > intended {
                    exceeded.push(ExceededVoxel {
                        voxel: grid.voxel_index(v),
                        intended_eqd2_gy: intended,
                        delivered_eqd2_gy: given,
                    });
                } else {
                    *o = remaining_dose(intended - given, v)? as f32;
                }
            }
            Ok(exceeded)
        })
        .collect();
    let mut exceeded = Vec::new();
    for p in parts {
        exceeded.extend(p?);
    }
    let bounds_out = match intent.min_gy().zip(intent.max_gy()) {
        Some((lo, hi)) => {
            let convert = |bound: &Volume<f32>, lower: bool| -> Result<Vec<f32>> {
                let mut b = vec![0.0f32; nv];
                b.par_chunks_mut(plane)
                    .enumerate()
                    .try_for_each(|(k, chunk)| -> Result<()> {
                        for (local, o) in chunk.iter_mut().enumerate() {
                            let v = k * plane + local;
                            if out[v] <= 0.0 {
                                continue;
                            }
                            let e = eqd2(f64::from(bound.as_slice()[v]), n, ab.at(v))?
                                - delivered_eqd2(v)?;
                            let r = remaining_dose(e, v)? as f32;
                            *o = if lower { r.min(out[v]) } else { r.max(out[v]) };
                        }
                        Ok(())
                    })?;
                Ok(b)
            };
            Some((convert(lo, true)?, convert(hi, false)?))
        }
        None => None,
    };
    if policy == ExcessPolicy::Refuse
        && let Some(first) = exceeded.first()
    {
        return Err(Error::DeliveredExceedsIntent {
            count: exceeded.len(),
            first_voxel: first.voxel,
            delivered_eqd2_gy: first.delivered_eqd2_gy,
            intended_eqd2_gy: first.intended_eqd2_gy,
        });
    }
    let spec = serde_json::json!({
        "kind": "adaptive",
        "intent": serde_json::from_str::<serde_json::Value>(&intent.provenance().spec)
            .unwrap_or_else(|_| serde_json::Value::String(intent.provenance().spec.clone())),
        "total_fractions": n,
        "delivered_fractions": k,
        "delivered": match delivered {
            Delivered::Physical { .. } => "physical",
            Delivered::Eqd2 { .. } => "eqd2",
        },
        "alpha_beta_gy": alpha_beta.describe(),
        "excess_policy": policy,
        "exceeded_voxels": exceeded.len(),
    })
    .to_string();
    let description = format!(
        "remaining {m} of {n} fractions after {k} delivered, to reach the EQD2 of: {}",
        intent.provenance().description
    );
    let mut per_fraction = vec![0.0f32; nv];
    per_fraction
        .par_chunks_mut(plane)
        .zip(out.par_chunks(plane))
        .for_each(|(p, o)| {
            for (p, &o) in p.iter_mut().zip(o) {
                if o > 0.0 {
                    *p = o / m as f32;
                }
            }
        });
    let mut remaining = Prescription::new(
        Volume::from_vec(grid.clone(), out)?,
        m,
        Provenance { description, spec },
    )
    .map_err(|e| match e {
        dosepaint_core::Error::Empty { .. } => Error::invalid(
            "adaptive re-prescription",
            format!(
                "nothing is left to prescribe: the delivered dose meets or exceeds the intent in \
                 every prescribed voxel ({} exceed it)",
                exceeded.len()
            ),
        ),
        e => e.into(),
    })?;
    if let Some((lo, hi)) = bounds_out {
        remaining = remaining.with_bounds(
            Volume::from_vec(grid.clone(), lo)?,
            Volume::from_vec(grid.clone(), hi)?,
        )?;
    }
    Ok(Adaptation {
        remaining,
        dose_per_fraction_gy: Volume::from_vec(grid.clone(), per_fraction)?,
        exceeded,
    })
}

/// Adaptive re-prescription from a new image: runs `mapping` on `new_inputs`
/// (the mid-treatment images, with the course's total number of fractions)
/// to get the new intent, then [`represcribe`]s.
///
/// # Errors
/// As the mapping and [`represcribe`].
pub fn represcribe_from_image(
    mapping: &dyn DoseMapping,
    new_inputs: &MappingInputs,
    delivered: &Delivered,
    alpha_beta: &AlphaBetaMap,
    policy: ExcessPolicy,
) -> Result<Adaptation> {
    let intent = mapping.map(new_inputs)?;
    represcribe(&intent, delivered, alpha_beta, policy)
}
