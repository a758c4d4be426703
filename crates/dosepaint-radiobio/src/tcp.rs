//! Tumour control probability (TCP): the Poisson LQ model with per-voxel clonogen
//! density, voxel volume and radiosensitivity, and the population TCP that averages
//! it over a Gaussian spread of alpha between patients.
//!
//! **Poisson LQ TCP** (Munro & Gilbert 1961; Webb & Nahum 1993, Phys Med Biol
//! 38:653): with `N_i = rho_i V_i` clonogens in voxel `i` and LQ survival
//! `S_i = exp(-(alpha_i D_i + beta_i D_i^2 / n))`,
//!
//! `TCP = exp(-sum_i N_i S_i)`, so `ln TCP = -sum_i exp(ln N_i - alpha_i D_i - beta_i D_i^2 / n)`
//!
//! is computed in log space (no underflow of TCP itself), and
//! `d ln TCP / d D_i = N_i S_i (alpha_i + 2 beta_i D_i / n)`: one `exp` per voxel
//! serves value and gradient.
//!
//! **Population TCP** (Webb & Nahum 1993): alpha varies between patients as a normal
//! distribution `N(alpha_mean, sigma_alpha^2)`, truncated at `alpha > 0`:
//! `TCP_pop = E_z[TCP(alpha_i (1 + c z))]`, `z ~ N(0, 1)` and `c = sigma_alpha /
//! alpha_mean` (with a uniform alpha this is exactly Webb & Nahum's model; with an
//! alpha map, e.g. hypoxia-modified, every voxel is scaled by the same patient
//! factor). beta does not vary. The expectation uses a fixed trapezoid rule on
//! equally spaced `z` (default 241 nodes on `[-8, 8]`), renormalised over the nodes
//! with `1 + c z > 0`. The equal spacing lets each voxel's survival be advanced from
//! node to node by one multiplication (`S(z + h) = S(z) e^{-c alpha D h}`), so the
//! cost is two `exp` per voxel plus a few flops per voxel and node. The TCP(alpha)
//! curve is a steep sigmoid (width about `1/D` in alpha), which a low-order
//! Gauss-Hermite rule resolves poorly; the trapezoid rule converges exponentially
//! for smooth integrands against the Gaussian and its accuracy is checked in the
//! tests against an independent fine integration.

use serde::{Deserialize, Serialize};

use crate::error::{self, Error, Result};
use crate::lq::{AlphaBeta, LqParams};
use crate::voxel::{
    Access, CHUNK, Field, Per, Uni, VoxelValues, bad_dose, check_len, chunk_len, collect_ok,
    dose_ok, map_chunks,
};

/// Per-voxel inputs of the Poisson TCP model (borrowed; validated and copied by
/// [`PoissonTcp::new`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TcpVoxelData<'a> {
    /// Clonogen density (cells per cm^3, finite, >= 0), e.g. from an ADC map.
    pub clonogen_density_per_cm3: VoxelValues<'a>,
    /// Voxel volume (cm^3, finite, > 0).
    pub voxel_volume_cm3: VoxelValues<'a>,
    /// alpha (Gy^-1, finite, > 0), e.g. hypoxia-modified from a pO2 map.
    pub alpha_per_gy: VoxelValues<'a>,
    /// beta (Gy^-2, finite, >= 0).
    pub beta_per_gy2: VoxelValues<'a>,
}

/// The Poisson LQ TCP model of one tumour, validated once at construction.
///
/// ```
/// use dosepaint_radiobio::{LqParams, PoissonTcp};
/// // 1000 voxels of 0.1 cm^3 with 1e7 clonogens/cm^3, alpha 0.3, beta 0.03, 35 fractions.
/// let tcp = PoissonTcp::uniform(1000, 35, LqParams::new(0.3, 0.03)?, 1e7, 0.1)?;
/// let doses = vec![70.0; 1000];
/// let mut grad = vec![0.0; 1000];
/// let ln_tcp = tcp.log_tcp_and_gradient(&doses, &mut grad)?;
/// // Closed form: ln TCP = -N exp(-(alpha D + beta D^2 / n)).
/// let expected = -1e9 * (-(0.3 * 70.0 + 0.03 * 70.0 * 70.0 / 35.0f64)).exp();
/// assert!((ln_tcp - expected).abs() < 1e-9 * expected.abs());
/// # Ok::<(), dosepaint_radiobio::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct PoissonTcp {
    n_voxels: usize,
    fractions: u32,
    /// `ln(rho_i V_i)` (`-inf` for voxels without clonogens).
    ln_clonogens: Field,
    alpha: Field,
    /// `beta_i / n`.
    beta_per_fraction: Field,
}

/// Kernels monomorphised over the three per-voxel fields.
trait Kernel3 {
    type Out;
    fn run<L: Access, A: Access, B: Access>(self, ln_n: L, alpha: A, b: B) -> Self::Out;
}

/// `e^l` and a gradient of `l` turned into the gradient of `e^l` in place (chain
/// rule): TCP from `ln TCP`.
fn exp_with_gradient(l: f64, grad: &mut [f64]) -> f64 {
    let t = l.exp();
    for g in grad.iter_mut() {
        *g *= t;
    }
    t
}

impl PoissonTcp {
    /// Validate and store the per-voxel data of `n_voxels` voxels treated in
    /// `fractions` fractions.
    pub fn new(n_voxels: usize, fractions: u32, data: TcpVoxelData<'_>) -> Result<Self> {
        if n_voxels == 0 {
            return Err(Error::Empty { name: "voxels" });
        }
        error::fraction_count("fractions", fractions)?;
        data.clonogen_density_per_cm3.validate(
            "clonogen_density_per_cm3",
            n_voxels,
            "finite and >= 0 per cm^3",
            |v| v.is_finite() && v >= 0.0,
        )?;
        data.voxel_volume_cm3.validate(
            "voxel_volume_cm3",
            n_voxels,
            "finite and > 0 cm^3",
            |v| v.is_finite() && v > 0.0,
        )?;
        data.alpha_per_gy
            .validate("alpha_per_gy", n_voxels, "finite and > 0 Gy^-1", |v| {
                v.is_finite() && v > 0.0
            })?;
        data.beta_per_gy2
            .validate("beta_per_gy2", n_voxels, "finite and >= 0 Gy^-2", |v| {
                v.is_finite() && v >= 0.0
            })?;
        let ln_clonogens = match (data.clonogen_density_per_cm3, data.voxel_volume_cm3) {
            (VoxelValues::Uniform(r), VoxelValues::Uniform(v)) => Field::Uniform((r * v).ln()),
            (r, v) => Field::PerVoxel((0..n_voxels).map(|i| (r.at(i) * v.at(i)).ln()).collect()),
        };
        if let Some(i) = (0..n_voxels).find(|&i| ln_clonogens.at(i) == f64::INFINITY) {
            return Err(Error::InvalidVoxelValue {
                quantity: "clonogens (density x volume)",
                index: i,
                value: f64::INFINITY,
                requirement: "finite",
            });
        }
        let nf = f64::from(fractions);
        Ok(PoissonTcp {
            n_voxels,
            fractions,
            ln_clonogens,
            alpha: data.alpha_per_gy.to_field(|a| a),
            beta_per_fraction: data.beta_per_gy2.to_field(|b| b / nf),
        })
    }

    /// Everything uniform: `n_voxels` voxels of `voxel_volume_cm3` at
    /// `clonogen_density_per_cm3`, radiosensitivity `lq`.
    pub fn uniform(
        n_voxels: usize,
        fractions: u32,
        lq: LqParams,
        clonogen_density_per_cm3: f64,
        voxel_volume_cm3: f64,
    ) -> Result<Self> {
        PoissonTcp::new(
            n_voxels,
            fractions,
            TcpVoxelData {
                clonogen_density_per_cm3: VoxelValues::Uniform(clonogen_density_per_cm3),
                voxel_volume_cm3: VoxelValues::Uniform(voxel_volume_cm3),
                alpha_per_gy: VoxelValues::Uniform(lq.alpha_per_gy()),
                beta_per_gy2: VoxelValues::Uniform(lq.beta_per_gy2()),
            },
        )
    }

    /// Number of voxels.
    pub fn n_voxels(&self) -> usize {
        self.n_voxels
    }

    /// Number of fractions.
    pub fn fractions(&self) -> u32 {
        self.fractions
    }

    /// Total number of clonogens before treatment.
    pub fn total_clonogens(&self) -> f64 {
        (0..self.n_voxels)
            .map(|i| self.ln_clonogens.at(i).exp())
            .sum()
    }

    /// `ln TCP` (never underflows; `-ln TCP` is the expected number of surviving
    /// clonogens).
    pub fn log_tcp(&self, doses_gy: &[f64]) -> Result<f64> {
        self.run(doses_gy, None)
    }

    /// `ln TCP` and `d ln TCP / d D_i` (into `grad_out`).
    pub fn log_tcp_and_gradient(&self, doses_gy: &[f64], grad_out: &mut [f64]) -> Result<f64> {
        check_len("grad_out", self.n_voxels, grad_out.len())?;
        self.run(doses_gy, Some(grad_out))
    }

    /// TCP.
    pub fn tcp(&self, doses_gy: &[f64]) -> Result<f64> {
        Ok(self.log_tcp(doses_gy)?.exp())
    }

    /// TCP and `d TCP / d D_i = TCP d ln TCP / d D_i` (into `grad_out`).
    pub fn tcp_and_gradient(&self, doses_gy: &[f64], grad_out: &mut [f64]) -> Result<f64> {
        let l = self.log_tcp_and_gradient(doses_gy, grad_out)?;
        Ok(exp_with_gradient(l, grad_out))
    }

    /// Run `k` on the three per-voxel fields, monomorphised for each combination of
    /// uniform and per-voxel fields.
    fn dispatch<K: Kernel3>(&self, k: K) -> K::Out {
        use Field::{PerVoxel as P, Uniform as U};
        match (&self.ln_clonogens, &self.alpha, &self.beta_per_fraction) {
            (U(l), U(a), U(c)) => k.run(Uni(*l), Uni(*a), Uni(*c)),
            (U(l), U(a), P(c)) => k.run(Uni(*l), Uni(*a), Per(c)),
            (U(l), P(a), U(c)) => k.run(Uni(*l), Per(a), Uni(*c)),
            (U(l), P(a), P(c)) => k.run(Uni(*l), Per(a), Per(c)),
            (P(l), U(a), U(c)) => k.run(Per(l), Uni(*a), Uni(*c)),
            (P(l), U(a), P(c)) => k.run(Per(l), Uni(*a), Per(c)),
            (P(l), P(a), U(c)) => k.run(Per(l), Per(a), Uni(*c)),
            (P(l), P(a), P(c)) => k.run(Per(l), Per(a), Per(c)),
        }
    }

    fn run(&self, doses: &[f64], grad: Option<&mut [f64]>) -> Result<f64> {
        check_len("doses_gy", self.n_voxels, doses.len())?;
        struct K<'a> {
            doses: &'a [f64],
            grad: Option<&'a mut [f64]>,
        }
        impl Kernel3 for K<'_> {
            type Out = Result<f64>;
            fn run<L: Access, A: Access, B: Access>(self, ln_n: L, alpha: A, b: B) -> Result<f64> {
                let doses = self.doses;
                let n = doses.len();
                let parts = map_chunks(n, self.grad, |start, mut out| {
                    let len = chunk_len(n, start);
                    let mut sum = 0.0;
                    for j in 0..len {
                        let i = start + j;
                        let d = doses[i];
                        if !dose_ok(d) {
                            return Err(bad_dose(i, d));
                        }
                        let a = alpha.get(i);
                        let bi = b.get(i);
                        let s = (ln_n.get(i) - d * (a + bi * d)).exp();
                        sum += s;
                        if let Some(o) = out.as_deref_mut() {
                            o[j] = s * (a + 2.0 * bi * d);
                        }
                    }
                    Ok(sum)
                });
                let survivors: f64 = collect_ok(parts)?.iter().sum();
                Ok(-survivors)
            }
        }
        self.dispatch(K { doses, grad })
    }
}

/// The fixed quadrature of the population average: `nodes` equally spaced points on
/// `[-z_max, z_max]` standard deviations.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PopulationQuadrature {
    /// Number of nodes (odd, >= 3).
    pub nodes: usize,
    /// Half-width in standard deviations (finite, > 0).
    pub z_max: f64,
}

impl Default for PopulationQuadrature {
    /// 241 nodes on `[-8, 8]` (spacing 1/15 of a standard deviation).
    fn default() -> Self {
        PopulationQuadrature {
            nodes: 241,
            z_max: 8.0,
        }
    }
}

/// Population TCP parameters of a tumour type (alpha spread between patients).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "TcpPopulationSpec")]
pub struct TcpPopulationParams {
    alpha_mean_per_gy: f64,
    alpha_sd_per_gy: f64,
    alpha_beta_gy: f64,
    clonogen_density_per_cm3: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TcpPopulationSpec {
    alpha_mean_per_gy: f64,
    alpha_sd_per_gy: f64,
    alpha_beta_gy: f64,
    clonogen_density_per_cm3: f64,
}

impl TryFrom<TcpPopulationSpec> for TcpPopulationParams {
    type Error = Error;
    fn try_from(s: TcpPopulationSpec) -> Result<Self> {
        TcpPopulationParams::new(
            s.alpha_mean_per_gy,
            s.alpha_sd_per_gy,
            s.alpha_beta_gy,
            s.clonogen_density_per_cm3,
        )
    }
}

impl TcpPopulationParams {
    /// Mean alpha (Gy^-1, > 0), its standard deviation between patients (Gy^-1,
    /// >= 0), alpha/beta (Gy, > 0) and clonogen density (per cm^3, > 0).
    pub fn new(
        alpha_mean_per_gy: f64,
        alpha_sd_per_gy: f64,
        alpha_beta_gy: f64,
        clonogen_density_per_cm3: f64,
    ) -> Result<Self> {
        error::positive("alpha_mean_per_gy", alpha_mean_per_gy)?;
        error::non_negative("alpha_sd_per_gy", alpha_sd_per_gy)?;
        error::positive("alpha_beta_gy", alpha_beta_gy)?;
        error::positive("clonogen_density_per_cm3", clonogen_density_per_cm3)?;
        Ok(TcpPopulationParams {
            alpha_mean_per_gy,
            alpha_sd_per_gy,
            alpha_beta_gy,
            clonogen_density_per_cm3,
        })
    }

    /// Mean alpha (Gy^-1).
    pub fn alpha_mean_per_gy(&self) -> f64 {
        self.alpha_mean_per_gy
    }

    /// Standard deviation of alpha between patients (Gy^-1).
    pub fn alpha_sd_per_gy(&self) -> f64 {
        self.alpha_sd_per_gy
    }

    /// alpha/beta (Gy).
    pub fn alpha_beta_gy(&self) -> f64 {
        self.alpha_beta_gy
    }

    /// Clonogen density (per cm^3).
    pub fn clonogen_density_per_cm3(&self) -> f64 {
        self.clonogen_density_per_cm3
    }

    /// LQ parameters at the mean alpha.
    pub fn lq(&self) -> LqParams {
        LqParams::from_parts(
            self.alpha_mean_per_gy,
            self.alpha_mean_per_gy / self.alpha_beta_gy,
        )
    }

    /// alpha/beta as an [`AlphaBeta`].
    pub fn alpha_beta(&self) -> AlphaBeta {
        // Validated > 0 and finite at construction.
        AlphaBeta::new(self.alpha_beta_gy).unwrap_or_else(|_| unreachable!())
    }

    /// Relative spread `sigma_alpha / alpha_mean`.
    pub fn relative_sd(&self) -> f64 {
        self.alpha_sd_per_gy / self.alpha_mean_per_gy
    }

    /// A population TCP model for a uniform tumour of `n_voxels` voxels of
    /// `voxel_volume_cm3`.
    pub fn uniform_model(
        &self,
        n_voxels: usize,
        fractions: u32,
        voxel_volume_cm3: f64,
    ) -> Result<PopulationTcp> {
        let model = PoissonTcp::uniform(
            n_voxels,
            fractions,
            self.lq(),
            self.clonogen_density_per_cm3,
            voxel_volume_cm3,
        )?;
        PopulationTcp::new(model, self.relative_sd(), PopulationQuadrature::default())
    }
}

/// Population TCP: the Poisson TCP averaged over a Gaussian spread of alpha
/// between patients (Webb & Nahum 1993).
///
/// ```
/// use dosepaint_radiobio::{LqParams, PoissonTcp, PopulationQuadrature, PopulationTcp};
/// let model = PoissonTcp::uniform(100, 35, LqParams::new(0.35, 0.035)?, 1e7, 0.5)?;
/// let pop = PopulationTcp::new(model, 0.08 / 0.35, PopulationQuadrature::default())?;
/// let low = pop.tcp(&vec![60.0; 100])?;
/// let high = pop.tcp(&vec![80.0; 100])?;
/// assert!(0.0 < low && low < high && high < 1.0);
/// # Ok::<(), dosepaint_radiobio::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct PopulationTcp {
    model: PoissonTcp,
    relative_sd: f64,
    /// Node positions z_k (kept nodes only, increasing, equally spaced).
    z: Vec<f64>,
    /// Normalised weights.
    w: Vec<f64>,
    /// Node spacing.
    h: f64,
}

/// Survival below this is flushed to zero in the node recurrence (avoids slow
/// subnormal arithmetic; far below anything that changes a TCP).
const TINY: f64 = 1e-280;
/// Voxels per block in the node recurrence.
const BLOCK: usize = 64;

/// The equally spaced quadrature nodes as the per-voxel recurrence walks them.
#[derive(Clone, Copy)]
struct NodeRecurrence {
    /// `sigma_alpha / alpha_mean`.
    cv: f64,
    /// The first node `z_0`.
    z0: f64,
    /// The node spacing.
    h: f64,
}

impl NodeRecurrence {
    /// For a voxel with `ln N`, `alpha`, `b = beta / n` and dose `d`: the expected
    /// survivors at the first node, `N S(z_0)`, and the factor
    /// `S(z + h) / S(z) = e^{-c alpha d h}` that advances them by one node.
    #[inline]
    fn start(self, ln_n: f64, alpha: f64, b: f64, d: f64) -> (f64, f64) {
        let s = (ln_n - alpha * d * (1.0 + self.cv * self.z0) - b * d * d).exp();
        let r = (-alpha * d * self.cv * self.h).exp();
        (s, r)
    }
}

/// `(offset, length)` of the successive blocks of at most [`BLOCK`] voxels in a chunk
/// of `len` voxels.
fn blocks(len: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..len)
        .step_by(BLOCK)
        .map(move |j0| (j0, BLOCK.min(len - j0)))
}

/// One node step `s r`, flushed to zero below [`TINY`].
#[inline]
fn advance(s: f64, r: f64) -> f64 {
    let t = s * r;
    if t < TINY { 0.0 } else { t }
}

impl PopulationTcp {
    /// `relative_sd = sigma_alpha / alpha_mean` (finite, >= 0) scales every voxel's
    /// alpha by `1 + relative_sd z`, `z ~ N(0,1)` truncated where that factor is > 0.
    pub fn new(
        model: PoissonTcp,
        relative_sd: f64,
        quadrature: PopulationQuadrature,
    ) -> Result<Self> {
        error::non_negative("relative_sd", relative_sd)?;
        if quadrature.nodes < 3 || quadrature.nodes.is_multiple_of(2) {
            return Err(Error::InvalidParameter {
                name: "nodes",
                value: quadrature.nodes as f64,
                requirement: "odd and >= 3",
            });
        }
        error::positive("z_max", quadrature.z_max)?;
        if relative_sd == 0.0 {
            return Ok(PopulationTcp {
                model,
                relative_sd,
                z: vec![0.0],
                w: vec![1.0],
                h: 0.0,
            });
        }
        let h = 2.0 * quadrature.z_max / (quadrature.nodes - 1) as f64;
        let mut z = Vec::with_capacity(quadrature.nodes);
        let mut w = Vec::with_capacity(quadrature.nodes);
        for k in 0..quadrature.nodes {
            let zk = -quadrature.z_max + k as f64 * h;
            if 1.0 + relative_sd * zk > 0.0 {
                z.push(zk);
                w.push((-0.5 * zk * zk).exp());
            }
        }
        let total: f64 = w.iter().sum();
        for wk in &mut w {
            *wk /= total;
        }
        Ok(PopulationTcp {
            model,
            relative_sd,
            z,
            w,
            h,
        })
    }

    /// The underlying per-patient model.
    pub fn model(&self) -> &PoissonTcp {
        &self.model
    }

    /// The relative spread of alpha.
    pub fn relative_sd(&self) -> f64 {
        self.relative_sd
    }

    fn recurrence(&self) -> NodeRecurrence {
        NodeRecurrence {
            cv: self.relative_sd,
            z0: self.z[0],
            h: self.h,
        }
    }

    /// The quadrature nodes (z) and normalised weights actually used.
    pub fn nodes(&self) -> (&[f64], &[f64]) {
        (&self.z, &self.w)
    }

    /// Population TCP.
    pub fn tcp(&self, doses_gy: &[f64]) -> Result<f64> {
        Ok(self.log_tcp(doses_gy)?.exp())
    }

    /// `ln TCP_pop`.
    pub fn log_tcp(&self, doses_gy: &[f64]) -> Result<f64> {
        let a = self.node_sums(doses_gy)?;
        Ok(self.combine(&a).0)
    }

    /// Population TCP and its gradient with respect to each voxel dose.
    pub fn tcp_and_gradient(&self, doses_gy: &[f64], grad_out: &mut [f64]) -> Result<f64> {
        let l = self.log_tcp_and_gradient(doses_gy, grad_out)?;
        Ok(exp_with_gradient(l, grad_out))
    }

    /// `ln TCP_pop` and its gradient with respect to each voxel dose:
    /// `sum_k c_k d ln TCP(z_k) / d D_i` with posterior node weights
    /// `c_k = w_k TCP(z_k) / TCP_pop`.
    pub fn log_tcp_and_gradient(&self, doses_gy: &[f64], grad_out: &mut [f64]) -> Result<f64> {
        check_len("grad_out", self.model.n_voxels, grad_out.len())?;
        let a = self.node_sums(doses_gy)?;
        let (log_pop, c) = self.combine(&a);
        let cz: Vec<f64> = c.iter().zip(&self.z).map(|(ck, zk)| ck * zk).collect();
        struct K<'a> {
            p: &'a PopulationTcp,
            doses: &'a [f64],
            grad: &'a mut [f64],
            c: &'a [f64],
            cz: &'a [f64],
        }
        impl Kernel3 for K<'_> {
            type Out = ();
            fn run<L: Access, A: Access, B: Access>(self, ln_n: L, alpha: A, b: B) {
                let K {
                    p,
                    doses,
                    grad,
                    c,
                    cz,
                } = self;
                let n = doses.len();
                let rec = p.recurrence();
                map_chunks(n, Some(grad), |start, out| {
                    let out = out.unwrap_or_default();
                    let len = chunk_len(n, start);
                    let mut s = [0.0; BLOCK];
                    let mut r = [0.0; BLOCK];
                    let mut acc_c = [0.0; BLOCK];
                    let mut acc_cz = [0.0; BLOCK];
                    for (j0, bl) in blocks(len) {
                        for j in 0..bl {
                            let i = start + j0 + j;
                            let d = doses[i];
                            (s[j], r[j]) = rec.start(ln_n.get(i), alpha.get(i), b.get(i), d);
                            acc_c[j] = 0.0;
                            acc_cz[j] = 0.0;
                        }
                        for (ck, czk) in c.iter().zip(cz) {
                            for j in 0..bl {
                                acc_c[j] += ck * s[j];
                                acc_cz[j] += czk * s[j];
                                s[j] = advance(s[j], r[j]);
                            }
                        }
                        for j in 0..bl {
                            let i = start + j0 + j;
                            let d = doses[i];
                            let ai = alpha.get(i);
                            // d(-A_k)/dD_i = s_ik (alpha_i (1 + cv z_k) + 2 b_i D_i)
                            out[j0 + j] =
                                acc_c[j] * (ai + 2.0 * b.get(i) * d) + acc_cz[j] * ai * rec.cv;
                        }
                    }
                });
            }
        }
        self.model.dispatch(K {
            p: self,
            doses: doses_gy,
            grad: grad_out,
            c: &c,
            cz: &cz,
        });
        Ok(log_pop)
    }

    /// `ln TCP_pop = ln sum_k w_k exp(-A_k)` and the posterior weights `c_k`.
    ///
    /// Near TCP = 1 it is `ln_1p(-sum_k w_k (1 - e^{-A_k}))` (full relative precision
    /// of the small `ln TCP`); elsewhere a log-sum-exp (no underflow near TCP = 0).
    fn combine(&self, a: &[f64]) -> (f64, Vec<f64>) {
        let logs: Vec<f64> = self.w.iter().zip(a).map(|(wk, ak)| wk.ln() - ak).collect();
        let failure: f64 = self
            .w
            .iter()
            .zip(a)
            .map(|(wk, ak)| -wk * (-ak).exp_m1())
            .sum();
        let log_pop = if failure < 0.5 {
            (-failure).ln_1p()
        } else {
            let max = logs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = logs.iter().map(|l| (l - max).exp()).sum();
            max + sum.ln()
        };
        let c = logs.iter().map(|l| (l - log_pop).exp()).collect();
        (log_pop, c)
    }

    /// `A_k = sum_i N_i S_i(z_k)` (expected survivors at each node), validating doses.
    fn node_sums(&self, doses: &[f64]) -> Result<Vec<f64>> {
        check_len("doses_gy", self.model.n_voxels, doses.len())?;
        struct K<'a> {
            p: &'a PopulationTcp,
            doses: &'a [f64],
        }
        impl Kernel3 for K<'_> {
            type Out = Result<Vec<f64>>;
            fn run<L: Access, A: Access, B: Access>(self, ln_n: L, alpha: A, b: B) -> Self::Out {
                let K { p, doses } = self;
                let n = doses.len();
                let nodes = p.z.len();
                let rec = p.recurrence();
                let parts = map_chunks(n, None, |start, _| {
                    let len = chunk_len(n, start);
                    let mut acc = vec![0.0; nodes];
                    let mut s = [0.0; BLOCK];
                    let mut r = [0.0; BLOCK];
                    for (j0, bl) in blocks(len) {
                        for j in 0..bl {
                            let i = start + j0 + j;
                            let d = doses[i];
                            if !dose_ok(d) {
                                return Err(bad_dose(i, d));
                            }
                            (s[j], r[j]) = rec.start(ln_n.get(i), alpha.get(i), b.get(i), d);
                        }
                        for s in &mut s[bl..] {
                            *s = 0.0;
                        }
                        for acc_k in &mut acc {
                            // Four fixed lanes: vectorisable and deterministic.
                            let mut lanes = [0.0; 4];
                            for (sq, rq) in s.chunks_exact_mut(4).zip(r.chunks_exact(4)) {
                                for q in 0..4 {
                                    lanes[q] += sq[q];
                                    sq[q] = advance(sq[q], rq[q]);
                                }
                            }
                            *acc_k += (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
                        }
                    }
                    Ok(acc)
                });
                let parts = collect_ok(parts)?;
                let mut total = vec![0.0; nodes];
                for part in parts {
                    for (t, v) in total.iter_mut().zip(part) {
                        *t += v;
                    }
                }
                Ok(total)
            }
        }
        debug_assert!(CHUNK.is_multiple_of(BLOCK));
        self.model.dispatch(K { p: self, doses })
    }
}
