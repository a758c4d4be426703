//! Fluence maps and their discretisation into integer intensity levels.

use dosepaint_core::BeamletLayout;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Largest number of intensity levels (and largest level of a [`LevelMap`])
/// accepted. Clinical sequencing uses 5 to 100 levels; beyond this the
/// problem is no longer a leaf-sequencing one and the run time (linear in the
/// level count for Engel's algorithm) would only grow.
pub const MAX_LEVELS: u32 = 1000;

/// A non-negative fluence map of one beam: `n_rows` leaf-pair rows (BEV y,
/// row 0 at the most negative y) by `n_cols` positions along leaf travel
/// (BEV x, column 0 at the most negative x), row-major, in beamlet-weight
/// units. The rows and columns are those of the beam's
/// [`BeamGrid`](dosepaint_core::BeamGrid).
///
/// ```
/// use dosepaint_mlc::FluenceMap;
/// let map = FluenceMap::new(2, 3, vec![0.0, 1.0, 2.0, 2.0, 1.0, 0.0])?;
/// assert_eq!(map.get(1, 0), 2.0);
/// assert!(FluenceMap::new(1, 2, vec![1.0, f64::NAN]).is_err());
/// # Ok::<(), dosepaint_mlc::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "MapSpec", into = "MapSpec")]
pub struct FluenceMap {
    n_rows: usize,
    n_cols: usize,
    values: Vec<f64>,
}

#[derive(Serialize, Deserialize)]
struct MapSpec {
    n_rows: usize,
    n_cols: usize,
    values: Vec<f64>,
}

impl TryFrom<MapSpec> for FluenceMap {
    type Error = Error;
    fn try_from(s: MapSpec) -> Result<Self> {
        FluenceMap::new(s.n_rows, s.n_cols, s.values)
    }
}

impl From<FluenceMap> for MapSpec {
    fn from(m: FluenceMap) -> Self {
        MapSpec {
            n_rows: m.n_rows,
            n_cols: m.n_cols,
            values: m.values,
        }
    }
}

pub(crate) fn check_dims(n_rows: usize, n_cols: usize, len: usize, what: &str) -> Result<()> {
    if n_rows == 0 || n_cols == 0 {
        return Err(Error::invalid(
            format!("{what} dimensions"),
            format!("{n_rows} rows x {n_cols} columns: both must be at least 1"),
        ));
    }
    let expected = n_rows.checked_mul(n_cols).ok_or_else(|| {
        Error::invalid(
            format!("{what} dimensions"),
            format!("{n_rows} x {n_cols} overflows"),
        )
    })?;
    if len != expected {
        return Err(Error::shape(
            what,
            format!("{n_rows} x {n_cols} = {expected} values"),
            format!("{len} values"),
        ));
    }
    Ok(())
}

impl FluenceMap {
    /// A map from row-major values.
    ///
    /// # Errors
    /// Zero rows or columns, a value count other than `n_rows * n_cols`, or a
    /// negative or non-finite value ([`Error::InvalidFluence`] names its row
    /// and column).
    pub fn new(n_rows: usize, n_cols: usize, values: Vec<f64>) -> Result<Self> {
        check_dims(n_rows, n_cols, values.len(), "fluence map")?;
        for (n, &v) in values.iter().enumerate() {
            let (row, col) = (n / n_cols, n % n_cols);
            if !v.is_finite() {
                return Err(Error::InvalidFluence {
                    row,
                    col,
                    value: v,
                    reason: "not finite",
                });
            }
            if v < 0.0 {
                return Err(Error::InvalidFluence {
                    row,
                    col,
                    value: v,
                    reason: "negative",
                });
            }
        }
        Ok(Self {
            n_rows,
            n_cols,
            values,
        })
    }

    /// The fluence map of `beam` from a weight vector over all beamlets of
    /// `layout` (grid positions without a beamlet are 0), via
    /// [`BeamletLayout::fluence_map`].
    ///
    /// # Errors
    /// A weight vector of the wrong length, a beam that does not exist, or a
    /// negative / non-finite weight (wrapped in [`Error::Beam`]).
    pub fn from_layout(layout: &BeamletLayout, weights: &[f64], beam: usize) -> Result<Self> {
        let values = layout.fluence_map(weights, beam)?;
        let g = layout.beam_grids()[beam];
        Self::new(g.n_rows, g.n_cols, values).map_err(|e| e.in_beam(beam))
    }

    /// Number of rows (leaf pairs).
    pub fn n_rows(&self) -> usize {
        self.n_rows
    }

    /// Number of columns (positions along leaf travel).
    pub fn n_cols(&self) -> usize {
        self.n_cols
    }

    /// Row-major values.
    pub fn values(&self) -> &[f64] {
        &self.values
    }

    /// Value at (`row`, `col`). Panics if out of range (a programming error).
    pub fn get(&self, row: usize, col: usize) -> f64 {
        assert!(row < self.n_rows && col < self.n_cols, "index out of range");
        self.values[row * self.n_cols + col]
    }

    /// Largest value (0 for an all-zero map).
    pub fn max(&self) -> f64 {
        self.values.iter().copied().fold(0.0, f64::max)
    }
}

/// How fluence values are rounded to integer levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Rounding {
    /// Each value to its nearest level (halves away from zero).
    Nearest,
    /// Largest-remainder rounding per row: every value goes to the level just
    /// below or just above it (`|a - x| < 1`), and each row's level sum is
    /// the nearest integer to the row's exact sum, so the row's total fluence
    /// is kept to within half a level.
    #[default]
    PreserveRowTotals,
}

/// A fluence map discretised to integer levels: the fluence of bixel
/// (r, c) is `level(r, c) * step`, with `step` in beamlet-weight units.
///
/// ```
/// use dosepaint_mlc::{FluenceMap, LevelMap, Rounding};
/// let map = FluenceMap::new(1, 4, vec![0.0, 0.6, 1.8, 2.0])?;
/// let lv = LevelMap::discretise(&map, 4, Rounding::Nearest)?;
/// assert_eq!(lv.levels(), &[0, 1, 4, 4]);
/// assert_eq!(lv.step(), 0.5);
/// // Lower bound of the total monitor units (in levels): sum of rises.
/// assert_eq!(lv.lower_bound(), 4);
/// # Ok::<(), dosepaint_mlc::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "LevelSpec", into = "LevelSpec")]
pub struct LevelMap {
    n_rows: usize,
    n_cols: usize,
    levels: Vec<u32>,
    step: f64,
}

#[derive(Serialize, Deserialize)]
struct LevelSpec {
    n_rows: usize,
    n_cols: usize,
    levels: Vec<u32>,
    step: f64,
}

impl TryFrom<LevelSpec> for LevelMap {
    type Error = Error;
    fn try_from(s: LevelSpec) -> Result<Self> {
        LevelMap::from_levels(s.n_rows, s.n_cols, s.levels, s.step)
    }
}

impl From<LevelMap> for LevelSpec {
    fn from(m: LevelMap) -> Self {
        LevelSpec {
            n_rows: m.n_rows,
            n_cols: m.n_cols,
            levels: m.levels,
            step: m.step,
        }
    }
}

/// How far a discretised map is from the fluence it came from, in
/// beamlet-weight units.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DiscretisationError {
    /// Largest `|level * step - fluence|` over the bixels.
    pub max_abs: f64,
    /// Root mean square of `level * step - fluence` over all bixels.
    pub rms: f64,
    /// `sum |level * step - fluence| / sum fluence` (0 for an all-zero map).
    pub relative_l1: f64,
}

impl LevelMap {
    /// A level map from integer levels and the fluence of one level.
    ///
    /// # Errors
    /// Bad dimensions, a level above [`MAX_LEVELS`], or a step that is
    /// negative or not finite.
    pub fn from_levels(n_rows: usize, n_cols: usize, levels: Vec<u32>, step: f64) -> Result<Self> {
        check_dims(n_rows, n_cols, levels.len(), "level map")?;
        if !(step.is_finite() && step >= 0.0) {
            return Err(Error::invalid(
                "level step",
                format!("{step} must be finite and non-negative"),
            ));
        }
        if let Some(n) = levels.iter().position(|&l| l > MAX_LEVELS) {
            return Err(Error::invalid(
                "level map",
                format!(
                    "level {} at row {}, column {} exceeds {MAX_LEVELS}",
                    levels[n],
                    n / n_cols,
                    n % n_cols
                ),
            ));
        }
        Ok(Self {
            n_rows,
            n_cols,
            levels,
            step,
        })
    }

    /// Discretises `map` to `n_levels` levels: the step is `max / n_levels`,
    /// so the largest value becomes level `n_levels`; an all-zero map gives
    /// all-zero levels with step 0.
    ///
    /// # Errors
    /// `n_levels` of 0 or above [`MAX_LEVELS`].
    pub fn discretise(map: &FluenceMap, n_levels: u32, rounding: Rounding) -> Result<Self> {
        check_levels(n_levels)?;
        let max = map.max();
        let (n_rows, n_cols) = (map.n_rows, map.n_cols);
        if max <= 0.0 {
            return Self::from_levels(n_rows, n_cols, vec![0; n_rows * n_cols], 0.0);
        }
        let lmax = f64::from(n_levels);
        let scaled = |v: f64| (v * lmax / max).min(lmax);
        let mut levels = vec![0u32; n_rows * n_cols];
        match rounding {
            Rounding::Nearest => {
                for (l, &v) in levels.iter_mut().zip(&map.values) {
                    *l = scaled(v).round() as u32;
                }
            }
            Rounding::PreserveRowTotals => {
                let mut order: Vec<(f64, usize)> = Vec::with_capacity(n_cols);
                for r in 0..n_rows {
                    let row = &map.values[r * n_cols..(r + 1) * n_cols];
                    let out = &mut levels[r * n_cols..(r + 1) * n_cols];
                    order.clear();
                    let mut exact = 0.0;
                    let mut floors = 0i64;
                    for (c, &v) in row.iter().enumerate() {
                        let x = scaled(v);
                        exact += x;
                        let f = x.floor();
                        out[c] = f as u32;
                        floors += f as i64;
                        let frac = x - f;
                        if frac > 0.0 {
                            order.push((frac, c));
                        }
                    }
                    let want = (exact.round() as i64 - floors).clamp(0, order.len() as i64);
                    // Largest fractional parts first; ties by column (stable).
                    order.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
                    for &(_, c) in order.iter().take(want as usize) {
                        out[c] += 1;
                    }
                }
            }
        }
        Self::from_levels(n_rows, n_cols, levels, max / lmax)
    }

    /// Number of rows (leaf pairs).
    pub fn n_rows(&self) -> usize {
        self.n_rows
    }

    /// Number of columns.
    pub fn n_cols(&self) -> usize {
        self.n_cols
    }

    /// Row-major levels.
    pub fn levels(&self) -> &[u32] {
        &self.levels
    }

    /// Level at (`row`, `col`). Panics if out of range (a programming error).
    pub fn level(&self, row: usize, col: usize) -> u32 {
        assert!(row < self.n_rows && col < self.n_cols, "index out of range");
        self.levels[row * self.n_cols + col]
    }

    /// Fluence of one level, beamlet-weight units.
    pub fn step(&self) -> f64 {
        self.step
    }

    /// Largest level.
    pub fn max_level(&self) -> u32 {
        self.levels.iter().copied().max().unwrap_or(0)
    }

    /// Whether every level is 0.
    pub fn is_zero(&self) -> bool {
        self.levels.iter().all(|&l| l == 0)
    }

    /// Complexity of row `row`: the sum of its positive increments along the
    /// row, counting the first from 0 (`a_{r,-1} = 0`). This is the minimum
    /// beam-on time (in levels) of the row alone.
    pub fn row_complexity(&self, row: usize) -> u64 {
        row_complexity(&self.levels[row * self.n_cols..(row + 1) * self.n_cols])
    }

    /// The proven lower bound of the total monitor units (in levels) of any
    /// decomposition into apertures: the largest row complexity
    /// (Bortfeld et al. 1994; Ahuja & Hamacher 2005; Engel 2005).
    pub fn lower_bound(&self) -> u64 {
        (0..self.n_rows)
            .map(|r| self.row_complexity(r))
            .max()
            .unwrap_or(0)
    }

    /// Number of columns of row `row` where the row rises
    /// (`a_j > a_{j-1}`, with `a_{-1} = 0`) and where it falls
    /// (`a_j < a_{j-1}`, for `j = 1..=n` with `a_n = 0`).
    pub fn row_edges(&self, row: usize) -> (usize, usize) {
        row_edges(&self.levels[row * self.n_cols..(row + 1) * self.n_cols])
    }

    /// A lower bound of the number of segments of *any* decomposition of the
    /// levels into apertures (whatever its monitor units, constrained or
    /// not): the largest, over the rows, of the number of rise positions and
    /// of the number of fall positions ([`LevelMap::row_edges`]).
    ///
    /// *Proof.* Let the map be `sum_s w_s S_s` with weights `w_s > 0` and
    /// apertures whose row `i` exposes the columns `l_s..r_s` (possibly
    /// none). With `a_{i,-1} = a_{i,n} = 0`, the change of row `i` at
    /// position `j` (`0..=n`) is
    /// `a_ij - a_i,j-1 = sum_s w_s ([l_s = j] - [r_s = j])` over the
    /// segments that expose something in row `i`. A rise at `j` (a positive
    /// change) therefore needs a segment with its left edge at `j`, and a
    /// fall needs one with its right edge at `j`. A segment has one left and
    /// one right edge per row, so it accounts for at most one rise and one
    /// fall position of every row, and the segment count is at least the
    /// number of rise positions and at least the number of fall positions of
    /// every row.
    ///
    /// ```
    /// use dosepaint_mlc::LevelMap;
    /// // Row 0 rises at columns 0, 1, 3 and falls at 2, 4 (to 0 after the
    /// // end): 3 rises. Row 1 rises once and falls at 1, 2, 3: 3 falls.
    /// let lv = LevelMap::from_levels(2, 4, vec![1, 3, 2, 4, 3, 2, 1, 0], 1.0)?;
    /// assert_eq!(lv.row_edges(0), (3, 2));
    /// assert_eq!(lv.row_edges(1), (1, 3));
    /// assert_eq!(lv.segment_lower_bound(), 3);
    /// # Ok::<(), dosepaint_mlc::Error>(())
    /// ```
    pub fn segment_lower_bound(&self) -> usize {
        (0..self.n_rows)
            .map(|r| {
                let (rises, falls) = self.row_edges(r);
                rises.max(falls)
            })
            .max()
            .unwrap_or(0)
    }

    /// The fluence of the levels, `level * step`, row-major.
    pub fn to_fluence(&self) -> Vec<f64> {
        self.levels
            .iter()
            .map(|&l| f64::from(l) * self.step)
            .collect()
    }

    /// How far these levels are from `map`.
    ///
    /// # Errors
    /// If `map` has other dimensions.
    pub fn discretisation_error(&self, map: &FluenceMap) -> Result<DiscretisationError> {
        if (map.n_rows, map.n_cols) != (self.n_rows, self.n_cols) {
            return Err(Error::shape(
                "fluence map vs level map",
                format!("{} x {}", self.n_rows, self.n_cols),
                format!("{} x {}", map.n_rows, map.n_cols),
            ));
        }
        let (mut max_abs, mut sq, mut l1, mut total) = (0.0f64, 0.0, 0.0, 0.0);
        for (&l, &f) in self.levels.iter().zip(&map.values) {
            let d = f64::from(l) * self.step - f;
            max_abs = max_abs.max(d.abs());
            sq += d * d;
            l1 += d.abs();
            total += f;
        }
        Ok(DiscretisationError {
            max_abs,
            rms: (sq / self.levels.len() as f64).sqrt(),
            relative_l1: if total > 0.0 { l1 / total } else { 0.0 },
        })
    }
}

pub(crate) fn check_levels(n_levels: u32) -> Result<()> {
    if n_levels == 0 || n_levels > MAX_LEVELS {
        return Err(Error::invalid(
            "number of levels",
            format!("{n_levels} must be in 1..={MAX_LEVELS}"),
        ));
    }
    Ok(())
}

/// Sum of positive increments of a row, starting from 0.
pub(crate) fn row_complexity(row: &[u32]) -> u64 {
    let mut prev = 0u32;
    let mut c = 0u64;
    for &v in row {
        if v > prev {
            c += u64::from(v - prev);
        }
        prev = v;
    }
    c
}

/// Rise and fall positions of a row, from 0 before its start to 0 after its
/// end.
pub(crate) fn row_edges(row: &[u32]) -> (usize, usize) {
    let (mut rises, mut falls, mut prev) = (0, 0, 0u32);
    for &v in row.iter().chain(std::iter::once(&0)) {
        rises += usize::from(v > prev);
        falls += usize::from(v < prev);
        prev = v;
    }
    (rises, falls)
}
