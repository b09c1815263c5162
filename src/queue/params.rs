//! Typed parameters per request type. Enqueue parses the JSON into these, checks them and
//! stores the canonical form (defaults filled in), so bad input is refused up front with a
//! message naming the field, and equal requests have equal parameter text.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::model::RequestType;

/// Parameters of `option_chain`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptionChainParams {
    /// Pick the listed expiry closest to this many calendar days out (ignored with `expiry`).
    #[serde(default = "default_target_dte")]
    pub target_dte: u32,
    /// An exact expiry, YYYYMMDD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry: Option<String>,
    /// Strikes taken on each side of the money (ignored with `strike`).
    #[serde(default = "default_strikes")]
    pub strikes: u32,
    /// Exactly these strikes (one or a list), instead of `strikes` around the money.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strike: Option<Vec<f64>>,
    /// Which rights to snapshot: C, P or both.
    #[serde(default = "default_rights")]
    pub rights: String,
}

fn default_target_dte() -> u32 {
    45
}
fn default_strikes() -> u32 {
    5
}
fn default_rights() -> String {
    "both".into()
}

/// Parameters of `futures_snapshot`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FuturesSnapshotParams {
    /// `front` or a contract month YYYYMM.
    #[serde(default = "default_month")]
    pub month: String,
}

fn default_month() -> String {
    "front".into()
}

/// Parameters of `market_bars`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarketBarsParams {
    /// IB bar size, e.g. `1 min`, `5 mins`, `1 hour`, `1 day`.
    #[serde(default = "default_bar_size")]
    pub bar_size: String,
    /// IB duration, e.g. `3600 S`, `5 D`, `2 W`, `1 M`, `1 Y`.
    #[serde(default = "default_duration")]
    pub duration: String,
    /// TRADES, MIDPOINT, BID, ASK or BID_ASK.
    #[serde(default = "default_what_to_show")]
    pub what_to_show: String,
    /// Regular trading hours only.
    #[serde(default = "default_true")]
    pub use_rth: bool,
}

fn default_bar_size() -> String {
    "1 day".into()
}
fn default_duration() -> String {
    "5 D".into()
}
fn default_what_to_show() -> String {
    "TRADES".into()
}
fn default_true() -> bool {
    true
}

/// Parameters of `position_update`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PositionUpdateParams {
    /// Only this contract; all positions when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conid: Option<i32>,
}

/// Parameters of `derived_stats`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DerivedStatsParams {
    /// The trading day (New York) to compute; the day of the request when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<NaiveDate>,
}

/// Parameters of any request type, parsed and checked.
#[derive(Debug, Clone, PartialEq)]
pub enum Params {
    OptionChain(OptionChainParams),
    FuturesSnapshot(FuturesSnapshotParams),
    MarketBars(MarketBarsParams),
    PositionUpdate(PositionUpdateParams),
    DerivedStats(DerivedStatsParams),
}

/// Parameters that were refused; the message names the field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid parameters for {request_type}: {message}")]
pub struct ParamError {
    pub request_type: RequestType,
    pub message: String,
}

pub const BAR_SIZES: [&str; 19] = [
    "1 secs", "5 secs", "10 secs", "15 secs", "30 secs", "1 min", "2 mins", "3 mins", "5 mins",
    "10 mins", "15 mins", "20 mins", "30 mins", "1 hour", "2 hours", "3 hours", "4 hours",
    "8 hours", "1 day",
];
const WHAT_TO_SHOW: [&str; 5] = ["TRADES", "MIDPOINT", "BID", "ASK", "BID_ASK"];

impl Params {
    /// Parses and checks `value` as the parameters of `request_type`.
    pub fn parse(
        request_type: RequestType,
        value: &serde_json::Value,
    ) -> Result<Params, ParamError> {
        let err = |message: String| ParamError {
            request_type,
            message,
        };
        let value = if value.is_null() {
            serde_json::Value::Object(Default::default())
        } else {
            value.clone()
        };
        if !value.is_object() {
            return Err(err(format!("expected a JSON object, got {value}")));
        }
        fn typed<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Result<T, String> {
            serde_path_to_error::deserialize(v).map_err(|e| {
                let path = e.path().to_string();
                if path == "." {
                    e.inner().to_string()
                } else {
                    format!("field `{path}`: {}", e.inner())
                }
            })
        }
        let value = normalize(request_type, value).map_err(err)?;
        let params = match request_type {
            RequestType::OptionChain => {
                let p: OptionChainParams = typed(value).map_err(err)?;
                if !(1..=1000).contains(&p.target_dte) {
                    return Err(err(format!(
                        "field `target_dte`: must be 1 to 1000 days, got {}",
                        p.target_dte
                    )));
                }
                if let Some(e) = &p.expiry {
                    if NaiveDate::parse_from_str(e, "%Y%m%d").is_err() {
                        return Err(err(format!("field `expiry`: expected YYYYMMDD, got `{e}`")));
                    }
                }
                if !(1..=50).contains(&p.strikes) {
                    return Err(err(format!(
                        "field `strikes`: must be 1 to 50 on each side of the money, got {}",
                        p.strikes
                    )));
                }
                if let Some(list) = &p.strike {
                    if list.is_empty() || list.len() > 100 {
                        return Err(err(format!(
                            "field `strike`: expected 1 to 100 strikes, got {}",
                            list.len()
                        )));
                    }
                    if let Some(bad) = list.iter().find(|k| !(k.is_finite() && **k > 0.0)) {
                        return Err(err(format!(
                            "field `strike`: a strike must be a positive price, got {bad}"
                        )));
                    }
                }
                if !["C", "P", "both"].contains(&p.rights.as_str()) {
                    return Err(err(format!(
                        "field `rights`: expected C, P or both, got `{}`",
                        p.rights
                    )));
                }
                Params::OptionChain(p)
            }
            RequestType::FuturesSnapshot => {
                let p: FuturesSnapshotParams = typed(value).map_err(err)?;
                let ok = p.month == "front"
                    || (p.month.len() == 6
                        && NaiveDate::parse_from_str(&format!("{}01", p.month), "%Y%m%d").is_ok());
                if !ok {
                    return Err(err(format!(
                        "field `month`: expected `front` or YYYYMM, got `{}`",
                        p.month
                    )));
                }
                Params::FuturesSnapshot(p)
            }
            RequestType::MarketBars => {
                let p: MarketBarsParams = typed(value).map_err(err)?;
                if !BAR_SIZES.contains(&p.bar_size.as_str()) {
                    return Err(err(format!(
                        "field `bar_size`: `{}` is not an IB bar size (e.g. `1 min`, `5 mins`, `1 hour`, `1 day`)",
                        p.bar_size
                    )));
                }
                if parse_duration(&p.duration).is_none() {
                    return Err(err(format!(
                        "field `duration`: expected a count and a unit S, D, W, M or Y (e.g. `5 D`), got `{}`",
                        p.duration
                    )));
                }
                if !WHAT_TO_SHOW.contains(&p.what_to_show.as_str()) {
                    return Err(err(format!(
                        "field `what_to_show`: expected one of {}, got `{}`",
                        WHAT_TO_SHOW.join(", "),
                        p.what_to_show
                    )));
                }
                Params::MarketBars(p)
            }
            RequestType::PositionUpdate => {
                let p: PositionUpdateParams = typed(value).map_err(err)?;
                if let Some(c) = p.conid {
                    if c <= 0 {
                        return Err(err(format!("field `conid`: must be positive, got {c}")));
                    }
                }
                Params::PositionUpdate(p)
            }
            RequestType::DerivedStats => Params::DerivedStats(typed(value).map_err(err)?),
            RequestType::Unknown => {
                return Err(err("a request of unknown type cannot run".into()));
            }
        };
        Ok(params)
    }

    /// The canonical JSON stored in the `parameters` column.
    pub fn to_json(&self) -> serde_json::Value {
        let v = match self {
            Params::OptionChain(p) => serde_json::to_value(p),
            Params::FuturesSnapshot(p) => serde_json::to_value(p),
            Params::MarketBars(p) => serde_json::to_value(p),
            Params::PositionUpdate(p) => serde_json::to_value(p),
            Params::DerivedStats(p) => serde_json::to_value(p),
        };
        v.expect("parameter structs always serialize")
    }

    /// The few parameters worth a column in a table view.
    pub fn summary(&self) -> String {
        match self {
            Params::OptionChain(p) => match &p.expiry {
                Some(e) => format!("exp {e} ±{} {}", p.strikes, p.rights),
                None => format!("{}d ±{} {}", p.target_dte, p.strikes, p.rights),
            },
            Params::FuturesSnapshot(p) => p.month.clone(),
            Params::MarketBars(p) => format!("{} × {}", p.duration, p.bar_size),
            Params::PositionUpdate(p) => p
                .conid
                .map(|c| c.to_string())
                .unwrap_or_else(|| "all".into()),
            Params::DerivedStats(p) => p
                .date
                .map(|d| d.to_string())
                .unwrap_or_else(|| "today".into()),
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Num,
    Str,
    Bool,
}

/// The known fields of each request type and the kind of value each holds.
fn fields(request_type: RequestType) -> &'static [(&'static str, Kind)] {
    match request_type {
        RequestType::OptionChain => &[
            ("target_dte", Kind::Num),
            ("expiry", Kind::Str),
            ("strikes", Kind::Num),
            ("strike", Kind::Num),
            ("rights", Kind::Str),
        ],
        RequestType::FuturesSnapshot => &[("month", Kind::Str)],
        RequestType::MarketBars => &[
            ("bar_size", Kind::Str),
            ("duration", Kind::Str),
            ("what_to_show", Kind::Str),
            ("use_rth", Kind::Bool),
        ],
        RequestType::PositionUpdate => &[("conid", Kind::Num)],
        RequestType::DerivedStats => &[("date", Kind::Str)],
        RequestType::Unknown => &[],
    }
}

/// The parameter names a request type takes, each with the kind of value it holds
/// (`number`, `text`, `true or false`): what the console's `:enqueue --param` completes.
pub fn names(request_type: RequestType) -> Vec<(&'static str, &'static str)> {
    fields(request_type)
        .iter()
        .map(|(name, kind)| {
            let kind = match kind {
                Kind::Num => "number",
                Kind::Str => "text",
                Kind::Bool => "true or false",
            };
            (*name, kind)
        })
        .collect()
}

/// Old parameter names (of the system ibq replaced) and the field each stands for.
const ALIASES: [(&str, &str); 3] = [
    ("dte", "target_dte"),
    ("days", "duration"),
    ("interval", "bar_size"),
];

/// Common spellings of a bar size (`1d`, `5m`, `5 min`, `1h`) as IB's own (`1 day`, `5 mins`).
pub fn normalize_bar_size(s: &str) -> Option<String> {
    let t = s.trim().to_ascii_lowercase();
    let split = t.find(|c: char| !c.is_ascii_digit())?;
    let count: u32 = t[..split].parse().ok()?;
    let unit = match t[split..].trim() {
        "s" | "sec" | "secs" | "second" | "seconds" => "secs",
        "m" | "min" | "mins" | "minute" | "minutes" => {
            if count == 1 {
                "min"
            } else {
                "mins"
            }
        }
        "h" | "hr" | "hour" | "hours" => {
            if count == 1 {
                "hour"
            } else {
                "hours"
            }
        }
        "d" | "day" | "days" => "day",
        _ => return None,
    };
    let ib = format!("{count} {unit}");
    BAR_SIZES.contains(&ib.as_str()).then_some(ib)
}

/// Renames old parameter names, types each value by its field (a string field keeps `202703`
/// as text, a number field reads `"30"` as 30) and names every unknown field at once, each
/// with the nearest known name.
fn normalize(
    request_type: RequestType,
    value: serde_json::Value,
) -> Result<serde_json::Value, String> {
    use serde_json::Value;
    let known = fields(request_type);
    let Value::Object(map) = value else {
        return Ok(value);
    };
    let mut out = serde_json::Map::new();
    let mut problems = Vec::new();
    for (key, v) in map {
        let alias = ALIASES
            .iter()
            .find(|(old, new)| *old == key && known.iter().any(|(k, _)| k == new));
        let (name, v) = match alias {
            Some((_, "duration")) => match &v {
                Value::Number(n) if n.as_u64().is_some_and(|d| d > 0) => {
                    ("duration", Value::String(format!("{n} D")))
                }
                Value::String(s) if s.trim().parse::<u32>().is_ok_and(|d| d > 0) => {
                    ("duration", Value::String(format!("{} D", s.trim())))
                }
                _ => {
                    problems.push(format!(
                        "field `days`: expected a positive number of days, got {v}"
                    ));
                    continue;
                }
            },
            Some((_, new)) => (*new, v),
            None => match known.iter().find(|(k, _)| *k == key) {
                Some((k, _)) => (*k, v),
                None => {
                    let mut names: Vec<&str> = known.iter().map(|(k, _)| *k).collect();
                    names.extend(
                        ALIASES
                            .iter()
                            .filter(|(_, new)| known.iter().any(|(k, _)| k == new))
                            .map(|(old, _)| *old),
                    );
                    let nearest = names
                        .iter()
                        .map(|n| (strsim::jaro_winkler(&key, n), *n))
                        .max_by(|a, b| a.0.total_cmp(&b.0))
                        .filter(|(score, _)| *score > 0.7);
                    problems.push(match nearest {
                        Some((_, n)) => format!("unknown field `{key}` (did you mean `{n}`?)"),
                        None if names.is_empty() => format!("unknown field `{key}`"),
                        None => format!("unknown field `{key}` (known: {})", names.join(", ")),
                    });
                    continue;
                }
            },
        };
        let kind = known
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, k)| *k)
            .unwrap_or(Kind::Str);
        let v = match (kind, v) {
            (Kind::Str, Value::Number(n)) => Value::String(n.to_string()),
            (Kind::Num, Value::String(s)) => match serde_json::from_str::<Value>(s.trim()) {
                Ok(n @ Value::Number(_)) => n,
                _ => Value::String(s),
            },
            (Kind::Bool, Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                _ => Value::String(s),
            },
            (_, v) => v,
        };
        let v = match (name, v) {
            ("bar_size", Value::String(s)) => Value::String(normalize_bar_size(&s).unwrap_or(s)),
            // One strike or a list: `450`, `"450,455"` or `[450, 455]` all become a list.
            ("strike", Value::Number(n)) => Value::Array(vec![Value::Number(n)]),
            ("strike", Value::String(s)) => {
                let parts: Option<Vec<Value>> = s
                    .split(',')
                    .map(|p| serde_json::from_str::<serde_json::Number>(p.trim()).ok())
                    .map(|n| n.map(Value::Number))
                    .collect();
                match parts {
                    Some(list) => Value::Array(list),
                    None => {
                        problems.push(format!(
                            "field `strike`: expected a strike or a comma-separated list, got {s:?}"
                        ));
                        continue;
                    }
                }
            }
            (_, v) => v,
        };
        if out.insert(name.to_string(), v).is_some() {
            problems.push(format!(
                "field `{name}` is given twice (under its old and its new name)"
            ));
        }
    }
    if problems.is_empty() {
        Ok(Value::Object(out))
    } else {
        Err(problems.join("; "))
    }
}

/// `5 D` → (5, 'D'). IB durations are a positive count, a space and one unit letter.
pub fn parse_duration(s: &str) -> Option<(u32, char)> {
    let (count, unit) = s.trim().split_once(' ')?;
    let count: u32 = count.parse().ok().filter(|c| *c > 0)?;
    let unit = match unit.trim() {
        u @ ("S" | "D" | "W" | "M" | "Y") => u.chars().next()?,
        _ => return None,
    };
    Some((count, unit))
}

/// Turns `--param k=v` pairs into a JSON object; values that parse as JSON keep their type
/// (`strikes=5` is a number, `use_rth=false` a bool), anything else is a string.
pub fn params_from_pairs(pairs: &[String]) -> Result<serde_json::Value, String> {
    let mut map = serde_json::Map::new();
    for pair in pairs {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| format!("--param `{pair}`: expected KEY=VALUE"))?;
        let k = k.trim();
        if k.is_empty() {
            return Err(format!("--param `{pair}`: the key is empty"));
        }
        let value =
            serde_json::from_str(v).unwrap_or_else(|_| serde_json::Value::String(v.to_string()));
        if map.insert(k.to_string(), value).is_some() {
            return Err(format!(
                "--param `{k}` is given twice; give each parameter once"
            ));
        }
    }
    Ok(serde_json::Value::Object(map))
}

/// What each old parameter name in `original` (as the writer gave it) was taken to mean,
/// e.g. `dte=45 → target_dte=45`, read against the canonical form `Params::parse` stores.
/// Empty when `original` uses no old name or does not parse.
pub fn taken_as(request_type: RequestType, original: &serde_json::Value) -> Vec<String> {
    let Some(map) = original.as_object() else {
        return Vec::new();
    };
    let Ok(canonical) = Params::parse(request_type, original).map(|p| p.to_json()) else {
        return Vec::new();
    };
    let known = fields(request_type);
    let plain = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        v => v.to_string(),
    };
    ALIASES
        .iter()
        .filter(|(_, new)| known.iter().any(|(k, _)| k == new))
        .filter_map(|(old, new)| {
            let given = map.get(*old)?;
            let meant = canonical.get(*new)?;
            Some(format!("{old}={} → {new}={}", plain(given), plain(meant)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_are_filled_in_and_canonical() {
        let p = Params::parse(RequestType::OptionChain, &json!({})).unwrap();
        assert_eq!(
            p.to_json(),
            json!({"target_dte": 45, "strikes": 5, "rights": "both"})
        );
        let a = Params::parse(RequestType::MarketBars, &json!({"duration": "5 D"})).unwrap();
        let b = Params::parse(RequestType::MarketBars, &json!({"bar_size": "1 day"})).unwrap();
        assert_eq!(a.to_json().to_string(), b.to_json().to_string());
    }

    #[test]
    fn a_wrong_type_names_the_field() {
        let e =
            Params::parse(RequestType::OptionChain, &json!({"target_dte": "soon"})).unwrap_err();
        assert!(e.message.contains("`target_dte`"), "{e}");
    }

    #[test]
    fn an_unknown_field_is_named() {
        let e = Params::parse(RequestType::MarketBars, &json!({"barsize": "1 day"})).unwrap_err();
        assert!(e.to_string().contains("barsize"), "{e}");
    }

    #[test]
    fn values_are_checked() {
        for (t, v, field) in [
            (RequestType::OptionChain, json!({"rights": "X"}), "rights"),
            (
                RequestType::OptionChain,
                json!({"expiry": "2026-12-18"}),
                "expiry",
            ),
            (RequestType::OptionChain, json!({"strikes": 0}), "strikes"),
            (
                RequestType::MarketBars,
                json!({"bar_size": "7 mins"}),
                "bar_size",
            ),
            (
                RequestType::MarketBars,
                json!({"duration": "5days"}),
                "duration",
            ),
            (
                RequestType::MarketBars,
                json!({"what_to_show": "VOLUME"}),
                "what_to_show",
            ),
            (
                RequestType::FuturesSnapshot,
                json!({"month": "202613"}),
                "month",
            ),
            (RequestType::PositionUpdate, json!({"conid": -4}), "conid"),
            (
                RequestType::DerivedStats,
                json!({"date": "yesterday"}),
                "date",
            ),
        ] {
            let e = Params::parse(t, &v).unwrap_err();
            assert!(e.message.contains(&format!("`{field}`")), "{t} {v}: {e}");
        }
    }

    #[test]
    fn param_pairs_keep_json_types() {
        let v = params_from_pairs(&[
            "strikes=5".into(),
            "rights=C".into(),
            "use_rth=false".into(),
        ])
        .unwrap();
        assert_eq!(v, json!({"strikes": 5, "rights": "C", "use_rth": false}));
        assert!(params_from_pairs(&["novalue".into()]).is_err());
        let e = params_from_pairs(&["target_dte=30".into(), "target_dte=60".into()]).unwrap_err();
        assert!(e.contains("`target_dte` is given twice"), "{e}");
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("5 D"), Some((5, 'D')));
        assert_eq!(parse_duration("3600 S"), Some((3600, 'S')));
        assert_eq!(parse_duration("0 D"), None);
        assert_eq!(parse_duration("5 X"), None);
    }

    #[test]
    fn old_parameter_names_are_taken() {
        let p = Params::parse(RequestType::OptionChain, &json!({"dte": 45})).unwrap();
        assert_eq!(p.to_json()["target_dte"], 45);
        let p = Params::parse(
            RequestType::MarketBars,
            &json!({"days": 5, "interval": "1 day"}),
        )
        .unwrap();
        assert_eq!(p.to_json()["duration"], "5 D");
        assert_eq!(p.to_json()["bar_size"], "1 day");
        for (given, ib) in [
            ("1d", "1 day"),
            ("1 day", "1 day"),
            ("5m", "5 mins"),
            ("5 mins", "5 mins"),
            ("1h", "1 hour"),
            ("1 min", "1 min"),
        ] {
            let p = Params::parse(RequestType::MarketBars, &json!({"interval": given})).unwrap();
            assert_eq!(p.to_json()["bar_size"], ib, "{given}");
        }
        let e = Params::parse(
            RequestType::MarketBars,
            &json!({"days": 5, "duration": "5 D"}),
        )
        .unwrap_err();
        assert!(e.message.contains("given twice"), "{e}");
    }

    #[test]
    fn every_unknown_field_is_named_with_the_nearest_name() {
        let e = Params::parse(
            RequestType::MarketBars,
            &json!({"barsize": "1 day", "durration": "5 D"}),
        )
        .unwrap_err();
        assert!(
            e.message.contains("`barsize` (did you mean `bar_size`?)"),
            "{e}"
        );
        assert!(
            e.message.contains("`durration` (did you mean `duration`?)"),
            "{e}"
        );
    }

    #[test]
    fn values_are_typed_by_their_field() {
        let pairs = params_from_pairs(&["month=202703".into()]).unwrap();
        let p = Params::parse(RequestType::FuturesSnapshot, &pairs).unwrap();
        assert_eq!(p.to_json()["month"], "202703");
        let pairs = params_from_pairs(&["expiry=20270115".into()]).unwrap();
        let p = Params::parse(RequestType::OptionChain, &pairs).unwrap();
        assert_eq!(p.to_json()["expiry"], "20270115");
        let p = Params::parse(RequestType::OptionChain, &json!({"target_dte": "30"})).unwrap();
        assert_eq!(p.to_json()["target_dte"], 30);
        let p = Params::parse(RequestType::MarketBars, &json!({"use_rth": "false"})).unwrap();
        assert_eq!(p.to_json()["use_rth"], false);
    }

    #[test]
    fn taken_as_names_each_old_field_and_its_canonical_value() {
        assert_eq!(
            taken_as(RequestType::OptionChain, &json!({"dte": 45})),
            vec!["dte=45 → target_dte=45"]
        );
        assert_eq!(
            taken_as(
                RequestType::MarketBars,
                &json!({"days": 5, "interval": "1d"})
            ),
            vec!["days=5 → duration=5 D", "interval=1d → bar_size=1 day"]
        );
        assert!(taken_as(RequestType::OptionChain, &json!({"target_dte": 45})).is_empty());
        assert!(taken_as(RequestType::OptionChain, &json!({"dte": "soon"})).is_empty());
    }

    #[test]
    fn strike_takes_one_or_a_list_and_checks_each() {
        let chain = |v| Params::parse(RequestType::OptionChain, &v).map(|p| p.to_json());
        assert_eq!(
            chain(json!({"strike": 450})).unwrap()["strike"],
            json!([450.0])
        );
        assert_eq!(
            chain(json!({"strike": "450, 455.5"})).unwrap()["strike"],
            json!([450.0, 455.5])
        );
        assert_eq!(
            chain(json!({"strike": [450, 455], "expiry": "20270115"})).unwrap()["strike"],
            json!([450.0, 455.0])
        );
        let e = chain(json!({"strike": "450,abc"})).unwrap_err();
        assert!(e.message.contains("`strike`"), "{e}");
        let e = chain(json!({"strike": [-5]})).unwrap_err();
        assert!(e.message.contains("positive price"), "{e}");
        let e = chain(json!({"strike": []})).unwrap_err();
        assert!(e.message.contains("1 to 100"), "{e}");
        let pairs = params_from_pairs(&["strike=450".into()]).unwrap();
        assert_eq!(chain(pairs).unwrap()["strike"], json!([450.0]));
    }
}
