//! The trained model: logistic regression over hashed features, shipped to
//! the policy as its data file (not compiled in), so the platform team
//! retrains and swaps it without rebuilding the component.
//!
//! File format (little endian): magic `PSTNLR01`, bucket bits (u8), three
//! zero bytes, scale (f32; weight = stored / scale), bias (f32), then one i8
//! weight per bucket.

use crate::features::Feature;

const MAGIC: &[u8; 8] = b"PSTNLR01";
const HEADER: usize = 8 + 4 + 4 + 4;

/// A model file's header: enough to score when the weights are fetched one
/// bucket at a time (see `Config::data_at`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Header {
    bits: u8,
    scale: f32,
    bias: f32,
}

/// The strongest stored weights on one side, with their feature index.
type Strongest = Vec<(i8, usize)>;

/// Bytes of the header at the start of a model file.
pub const HEADER_LEN: usize = HEADER;

/// A whole model: header and every weight, read in place from the file.
#[derive(Debug, Clone, PartialEq)]
pub struct Model<'a> {
    header: Header,
    weights: std::borrow::Cow<'a, [u8]>,
}

/// Why model bytes were refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelError(pub String);

impl std::fmt::Display for ModelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid model: {}", self.0)
    }
}

/// One feature's contribution to a score.
#[derive(Debug, Clone, PartialEq)]
pub struct Contribution {
    /// The prefixed token.
    pub token: String,
    /// Its weight (log-odds).
    pub weight: f32,
}

impl Header {
    /// Parses the header (the first [`HEADER_LEN`] bytes of a model file).
    pub fn parse(bytes: &[u8]) -> Result<Self, ModelError> {
        if bytes.len() < HEADER || &bytes[..8] != MAGIC {
            return Err(ModelError("not a Postern model (bad magic)".into()));
        }
        let bits = bytes[8];
        if !(8..=24).contains(&bits) {
            return Err(ModelError(format!("{bits} bucket bits (8-24 expected)")));
        }
        let f32_at = |i: usize| f32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        let (scale, bias) = (f32_at(12), f32_at(16));
        if !scale.is_finite() || scale <= 0.0 || !bias.is_finite() {
            return Err(ModelError("scale or bias is not a finite number".into()));
        }
        Ok(Header { bits, scale, bias })
    }

    /// File offsets of the weights of these features, in order.
    pub fn offsets(&self, features: &[Feature<'_>]) -> Vec<u32> {
        features.iter().map(|f| (HEADER + Model::bucket(self.bits, f.hash)) as u32).collect()
    }

    /// Log-odds that the message is spam from the features' stored weights
    /// (one byte per feature, in order), and the strongest contributions (at
    /// most `top`, on the verdict's side, strongest first).
    pub fn score(&self, features: &[Feature<'_>], stored: &[u8], top: usize) -> (f32, Vec<Contribution>) {
        // One pass: the integer sum of the stored weights, and each side's
        // strongest few (kept sorted, strongest first).
        let mut sum: i64 = 0;
        let (mut up, mut down): (Strongest, Strongest) = (Vec::new(), Vec::new());
        for (i, b) in stored.iter().enumerate() {
            let w = *b as i8;
            sum += i64::from(w);
            let (side, stronger): (&mut Strongest, fn(i8, i8) -> bool) = match w {
                0 => continue,
                w if w > 0 => (&mut up, |a, b| a > b),
                _ => (&mut down, |a, b| a < b),
            };
            if side.len() < top || side.last().is_some_and(|l| stronger(w, l.0)) {
                let at = side.iter().position(|s| stronger(w, s.0)).unwrap_or(side.len());
                side.insert(at, (w, i));
                side.truncate(top);
            }
        }
        let logit = self.bias + sum as f32 / self.scale;
        let chosen = if logit > 0.0 { up } else { down };
        let explain = chosen
            .into_iter()
            .map(|(w, i)| Contribution { token: features[i].token(), weight: f32::from(w) / self.scale })
            .collect();
        (logit, explain)
    }
}

impl<'a> Model<'a> {
    /// Parses a whole model file.
    pub fn from_bytes(bytes: &'a [u8]) -> Result<Self, ModelError> {
        let header = Header::parse(bytes)?;
        let n = 1usize << header.bits;
        if bytes.len() != HEADER + n {
            return Err(ModelError(format!("{} bytes for {n} buckets", bytes.len())));
        }
        Ok(Model { header, weights: std::borrow::Cow::Borrowed(&bytes[HEADER..]) })
    }

    /// The file's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER + self.weights.len());
        let h = &self.header;
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&[h.bits, 0, 0, 0]);
        out.extend_from_slice(&h.scale.to_le_bytes());
        out.extend_from_slice(&h.bias.to_le_bytes());
        out.extend_from_slice(&self.weights);
        out
    }

    /// Quantizes trained weights (one per bucket, `1 << bits` of them).
    pub fn quantize(bits: u8, weights: &[f64], bias: f64) -> Model<'static> {
        let max = weights.iter().fold(0.0f64, |m, w| m.max(w.abs())).max(1e-9);
        let scale = (127.0 / max) as f32;
        let weights = weights
            .iter()
            .map(|w| (w * f64::from(scale)).round().clamp(-127.0, 127.0) as i8 as u8)
            .collect::<Vec<u8>>();
        Model { header: Header { bits, scale, bias: bias as f32 }, weights: std::borrow::Cow::Owned(weights) }
    }

    /// Bucket of a feature hash.
    pub fn bucket(bits: u8, hash: u64) -> usize {
        // Fold the high bits in: FNV's low bits alone mix poorly.
        ((hash ^ (hash >> 32)) as usize) & ((1usize << bits) - 1)
    }

    /// Log-odds and strongest contributions (see [`Header::score`]).
    pub fn score(&self, features: &[Feature<'_>], top: usize) -> (f32, Vec<Contribution>) {
        let stored: Vec<u8> = features.iter().map(|f| self.weights[Self::bucket(self.header.bits, f.hash)]).collect();
        self.header.score(features, &stored, top)
    }
}

/// Training settings.
#[derive(Debug, Clone, Copy)]
pub struct TrainOptions {
    /// Bucket bits (the model has `1 << bits` weights).
    pub bits: u8,
    /// Passes over the data.
    pub epochs: u32,
    /// Initial learning rate.
    pub learning_rate: f64,
    /// L2 penalty per step.
    pub l2: f64,
    /// Seed of the example order.
    pub seed: u64,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions { bits: 16, epochs: 30, learning_rate: 0.2, l2: 1e-5, seed: 42 }
    }
}

/// Trains a logistic regression by stochastic gradient descent. Each example
/// is its feature hashes and whether it is spam. Deterministic: the same
/// examples, in the same order, with the same options give the same model.
pub fn train(examples: &[(Vec<u64>, bool)], opts: &TrainOptions) -> Model<'static> {
    let n = 1usize << opts.bits;
    let mut w = vec![0.0f64; n];
    // The bias is the prior log-odds and is not learned: a message with
    // little evidence (a short support request) must land near p = 0.5, not
    // wherever the intercept drifted while fitting thousands of tokens.
    let spam = examples.iter().filter(|(_, s)| *s).count().max(1) as f64;
    let ham = (examples.len() as f64 - spam).max(1.0);
    let bias = (spam / ham).ln();
    let mut order: Vec<usize> = (0..examples.len()).collect();
    let mut rng = opts.seed.max(1);
    let mut step = 0u64;
    for _ in 0..opts.epochs {
        // Fisher-Yates with xorshift64: a fixed, seeded order.
        for i in (1..order.len()).rev() {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            order.swap(i, (rng % (i as u64 + 1)) as usize);
        }
        for &i in &order {
            let (hashes, spam) = &examples[i];
            let buckets: Vec<usize> = hashes.iter().map(|h| Model::bucket(opts.bits, *h)).collect();
            let z = bias + buckets.iter().map(|b| w[*b]).sum::<f64>();
            let p = 1.0 / (1.0 + (-z).exp());
            let g = p - if *spam { 1.0 } else { 0.0 };
            step += 1;
            let lr = opts.learning_rate / (1.0 + step as f64 / 5000.0);
            for b in buckets {
                w[b] -= lr * (g + opts.l2 * w[b]);
            }
        }
    }
    Model::quantize(opts.bits, &w, bias)
}

#[cfg(test)]
mod tests {
    use super::*;
    fn feature(token: &'static str) -> Feature<'static> {
        Feature { hash: crate::features::fnv1a(b"b:", token.as_bytes()), prefix: "b:", text: token }
    }

    #[test]
    fn trains_deterministically_and_separates_a_toy_set() {
        let ex = |words: &[&'static str], spam| (words.iter().map(|w| feature(w).hash).collect::<Vec<_>>(), spam);
        let data = vec![
            ex(&["viagra", "cheap", "now"], true),
            ex(&["cheap", "pills", "offer"], true),
            ex(&["invoice", "meeting", "now"], false),
            ex(&["meeting", "agenda", "thanks"], false),
        ];
        let opts = TrainOptions { bits: 10, epochs: 50, ..TrainOptions::default() };
        let a = train(&data, &opts);
        assert_eq!(a.to_bytes(), train(&data, &opts).to_bytes(), "same inputs, same bytes");
        let (spam, why) = a.score(&[feature("cheap"), feature("viagra")], 2);
        let (ham, _) = a.score(&[feature("meeting"), feature("agenda")], 2);
        assert!(spam > 1.0 && ham < -1.0, "spam {spam}, ham {ham}");
        assert!(why.iter().any(|c| c.token == "b:cheap" || c.token == "b:viagra"), "{why:?}");
        let other = TrainOptions { seed: 7, ..opts };
        assert_ne!(a.to_bytes(), train(&data, &other).to_bytes(), "the seed matters");
    }

    #[test]
    fn model_files_round_trip_and_bad_ones_are_refused() {
        let m = Model::quantize(8, &vec![0.5; 256], -1.0);
        let bytes = m.to_bytes();
        assert_eq!(Model::from_bytes(&bytes).unwrap(), m);
        assert!(Model::from_bytes(b"nope").is_err());
        assert!(Model::from_bytes(&bytes[..bytes.len() - 1]).is_err());
        let mut bad = bytes.clone();
        bad[8] = 40;
        assert!(Model::from_bytes(&bad).is_err());
    }
}
