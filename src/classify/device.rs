//! The feature classifiers' forward as Burn operations on a device: the device twin of
//! [`FeatureClassifier::predict_proba`] (f32 on the device, f64 on the host), so heads on
//! backbone embeddings are scored where the backbone ran and many permuted feature matrices go
//! through a head in one call.
//!
//! Standardisation, the logistic and MLP layers and the SVM's kernel values, decision values and
//! Platt probabilities run on the device. The SVM's coupling of pairwise probabilities into class
//! probabilities (libsvm's iterative `multiclass_probability`) runs on the host for three or more
//! classes: it reads back `N x C(C-1)/2` values, not the `N x S` kernel matrix.

use super::{FeatureClassifier, Head};
use crate::error::{Error, Result, check_shape};
use crate::model::read_f64_2d;
use burn::tensor::activation::{relu, sigmoid, softmax};
use burn::tensor::{Device, Tensor, TensorData};
use ndarray::Array2;

/// libsvm's clamp of pairwise probabilities (`min_prob`), as on the host.
const MIN_PROB: f32 = 1e-7;

/// A [`FeatureClassifier`]'s parameters uploaded once to a device.
pub struct DeviceHead {
    /// The host classifier (the SVM's coupling runs there).
    classifier: FeatureClassifier,
    /// The uploaded parameters (boxed: tensor handles are large, and models hold a head).
    tensors: Box<Tensors>,
    device: Device,
}

/// The scaler's and the head's tensors.
struct Tensors {
    /// Feature means. // [1, D]
    mean: Tensor<2>,
    /// Reciprocal feature scales. // [1, D]
    inv_scale: Tensor<2>,
    layers: Layers,
}

/// The head's tensors.
#[allow(clippy::large_enum_variant)] // one per head, never moved on the hot path
enum Layers {
    LogReg {
        /// // [D, C]
        w_t: Tensor<2>,
        /// // [1, C]
        b: Tensor<2>,
    },
    Mlp {
        /// // [D, H]
        w1: Tensor<2>,
        /// // [1, H]
        b1: Tensor<2>,
        /// // [H, C]
        w2: Tensor<2>,
        /// // [1, C]
        b2: Tensor<2>,
    },
    Svm {
        gamma: f32,
        /// Support vectors, transposed. // [D, S]
        support_t: Tensor<2>,
        /// Their squared norms. // [1, S]
        support_sq: Tensor<2>,
        /// `y alpha` of each support vector in each pair (0 where unused). // [S, P]
        coef: Tensor<2>,
        /// // [1, P]
        rho: Tensor<2>,
        /// Platt slopes. // [1, P]
        prob_a: Tensor<2>,
        /// Platt offsets. // [1, P]
        prob_b: Tensor<2>,
    },
}

/// A `[rows, cols]` tensor of f64 values rounded to f32.
fn upload(values: impl IntoIterator<Item = f64>, rows: usize, cols: usize, device: &Device) -> Tensor<2> {
    let flat: Vec<f32> = values.into_iter().map(|v| v as f32).collect();
    debug_assert_eq!(flat.len(), rows * cols);
    Tensor::from_data(TensorData::new(flat, [rows, cols]), device)
}

impl DeviceHead {
    /// Uploads `classifier`'s scaler and head to `device`.
    pub fn new(classifier: &FeatureClassifier, device: &Device) -> Self {
        let d = classifier.feature_names().len();
        let c = classifier.classes().len();
        let scaler = classifier.scaler();
        let mean = upload(scaler.mean().iter().copied(), 1, d, device);
        let inv_scale = upload(scaler.scale().iter().map(|s| 1.0 / s), 1, d, device);
        let layers = match &classifier.head {
            Head::LogReg(h) => {
                let (coef, intercept) = h.weights(); // [C, D], [C]
                Layers::LogReg {
                    w_t: upload(coef.iter().copied(), c, d, device).transpose(),
                    b: upload(intercept.iter().copied(), 1, c, device),
                }
            }
            Head::Mlp(h) => {
                let ([w1, b1, w2, b2], hidden) = h.weights();
                Layers::Mlp {
                    w1: upload(w1.iter().copied(), d, hidden, device),
                    b1: upload(b1.iter().copied(), 1, hidden, device),
                    w2: upload(w2.iter().copied(), hidden, c, device),
                    b2: upload(b2.iter().copied(), 1, c, device),
                }
            }
            Head::Svm(h) => {
                let (gamma, support, pairs) = h.parts();
                let s = support.len() / h.n_features().max(1);
                let p = pairs.len();
                let mut coef = vec![0.0f64; s * p]; // [S, P]
                for (j, pair) in pairs.iter().enumerate() {
                    for (&row, &a) in pair.sv.iter().zip(pair.coef) {
                        coef[row * p + j] = a;
                    }
                }
                let support_sq = support
                    .chunks_exact(d.max(1))
                    .map(|r| r.iter().map(|v| v * v).sum::<f64>());
                Layers::Svm {
                    gamma: gamma as f32,
                    support_t: upload(support.iter().copied(), s, d, device).transpose(),
                    support_sq: upload(support_sq, 1, s, device),
                    coef: upload(coef, s, p, device),
                    rho: upload(pairs.iter().map(|q| q.rho), 1, p, device),
                    prob_a: upload(pairs.iter().map(|q| q.prob_a), 1, p, device),
                    prob_b: upload(pairs.iter().map(|q| q.prob_b), 1, p, device),
                }
            }
        };
        DeviceHead {
            classifier: classifier.clone(),
            tensors: Box::new(Tensors {
                mean,
                inv_scale,
                layers,
            }),
            device: device.clone(),
        }
    }

    /// The classifier it was built from.
    pub fn classifier(&self) -> &FeatureClassifier {
        &self.classifier
    }

    /// Class probabilities of raw (unstandardised) feature rows; every row sums to 1 up to f32
    /// rounding. Non-finite features are not looked for here (they give non-finite
    /// probabilities); [`DeviceHead::probs_of_rows`] reports them as the host path does.
    ///
    /// # Shapes
    /// `x` [N, D] -> [N, C]
    pub fn probs(&self, x: Tensor<2>) -> Result<Tensor<2>> {
        let [n, d] = x.dims();
        let want_d = self.classifier.feature_names().len();
        check_shape("x", &[n, want_d], &[n, d])?;
        let t = &*self.tensors;
        let xs = (x - t.mean.clone()) * t.inv_scale.clone(); // [N, D]
        match &t.layers {
            Layers::LogReg { w_t, b } => Ok(softmax(xs.matmul(w_t.clone()) + b.clone(), 1)),
            Layers::Mlp { w1, b1, w2, b2 } => {
                let hidden = relu(xs.matmul(w1.clone()) + b1.clone()); // [N, H]
                Ok(softmax(hidden.matmul(w2.clone()) + b2.clone(), 1))
            }
            Layers::Svm {
                gamma,
                support_t,
                support_sq,
                coef,
                rho,
                prob_a,
                prob_b,
            } => {
                let x_sq = xs.clone().powi_scalar(2).sum_dim(1); // [N, 1]
                let cross = xs.matmul(support_t.clone()); // [N, S]
                let dist = (x_sq + support_sq.clone() - cross * 2.0).clamp_min(0.0);
                let kernel = (dist * (-*gamma)).exp(); // [N, S]
                let decision = kernel.matmul(coef.clone()) - rho.clone(); // [N, P]
                // libsvm: P(first | x) = 1 / (1 + exp(A f + B)).
                let first = sigmoid((decision * prob_a.clone() + prob_b.clone()).neg()) // [N, P]
                    .clamp(MIN_PROB, 1.0 - MIN_PROB);
                if self.classifier.classes().len() == 2 {
                    let second = first.clone().neg() + 1.0;
                    return Ok(Tensor::cat(vec![first, second], 1));
                }
                let Head::Svm(svm) = &self.classifier.head else {
                    return Err(Error::Device("svm layers on a head that is not an svm".into()));
                };
                let coupled = svm.couple(read_f64_2d(first)?.view()); // [N, C]
                let c = coupled.ncols();
                Ok(upload(coupled, n, c, &self.device))
            }
        }
    }

    /// [`DeviceHead::probs`] of host rows, left on the device. As on the host, a non-finite
    /// feature is an [`Error::Config`] naming row and column.
    ///
    /// # Shapes
    /// `x` [N, D] -> [N, C]
    pub fn probs_of_rows(&self, x: ndarray::ArrayView2<f64>) -> Result<Tensor<2>> {
        let (n, d) = x.dim();
        super::check_finite(x, self.classifier.feature_names())?;
        self.probs(upload(x.iter().copied(), n, d, &self.device))
    }

    /// [`DeviceHead::probs_of_rows`], read back.
    ///
    /// # Shapes
    /// `x` [N, D] -> [N, C]
    pub fn probs_host(&self, x: ndarray::ArrayView2<f64>) -> Result<Array2<f64>> {
        read_f64_2d(self.probs_of_rows(x)?)
    }
}
