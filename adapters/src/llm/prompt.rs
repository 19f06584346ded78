//! What a model is shown: the market context of the tick (instrument, time, last price,
//! the bar or the quote, EMA 20, EMA 50, RSI 14 and the trend they make), the position
//! and equity, and the default prompt that asks for the decision contract in strict
//! JSON, protective-exit and entry terms included.
//!
//! The indicators are computed here, from the closes the provider has seen, with the
//! same [`Ema`] and [`Rsi`] as the rule strategies. The values go into the prompt as
//! text with four decimals, and the prompt into `DecisionMade.prompt`, so the record
//! holds what the model saw.

use std::fmt::Write as _;

use ledger_core::decision::DecisionInput;
use ledger_core::strategy::{Ema, Rsi};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Period of the fast EMA shown to the model, bars.
pub const EMA_FAST: usize = 20;
/// Period of the slow EMA shown to the model, bars.
pub const EMA_SLOW: usize = 50;
/// Period of the RSI shown to the model, bars.
pub const RSI_LEN: usize = 14;

/// The system message: the role, the allowed actions and the strict JSON contract
/// (the fields [`ledger_core::decision::parse_decision`] reads).
pub const SYSTEM_PROMPT: &str = "You are the decision step of an automated trading system for one instrument. \
You are given the market context of the latest bar, the position held and the account equity.
Answer with exactly one JSON object and nothing else, in this form:
{\"action\": \"long\" | \"short\" | \"close\" | \"hold\", \"size_pct\": number, \"confidence\": number, \"reason\": string, \
\"stop_loss\": number or null, \"take_profit\": number or null, \"trailing_stop_pct\": number or null, \
\"limit_price\": number or null, \"time_in_force\": \"gtc\" | \"day\" | \"ioc\" or null}
Actions: long opens a long position (a short held is closed first); short opens a short position (a long held is \
closed first); close closes the position held; hold does nothing. A long or short in the direction already held \
closes and reopens the position: answer hold to keep it.
Fields: size_pct is the fraction of equity for the new position, 0 to 1; confidence is 0 to 1; reason is one short \
sentence. For long and short only: stop_loss and take_profit are prices that close the position; trailing_stop_pct \
is a trailing stop as a fraction of the price, strictly between 0 and 1; limit_price enters with a limit order \
instead of at market, with time_in_force. Use null for any term you do not set. Orders pass a risk engine that may \
refuse them.";

/// Added to the system message of a tool-calling agent.
pub const TOOLS_NOTE: &str = "You may call the tools you are given to look further (the quote, the portfolio, \
technicals, recent bars, a dry run of the risk engine on a decision you consider) before you answer; they are \
read-only and place nothing. Then answer with the JSON object only.";

/// The indicators of the closes seen so far: EMA 20, EMA 50 and RSI 14, updated in
/// O(1) per tick. Serializable, so a session snapshot keeps them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Indicators {
    ema_fast: Ema,
    ema_slow: Ema,
    rsi: Rsi,
}

impl Default for Indicators {
    fn default() -> Self {
        Indicators { ema_fast: Ema::new(EMA_FAST), ema_slow: Ema::new(EMA_SLOW), rsi: Rsi::new(RSI_LEN) }
    }
}

/// The indicator values after one close.
#[derive(Debug, Clone, PartialEq)]
pub struct Levels {
    /// EMA 20 of the closes, price units.
    pub ema_fast: f64,
    /// EMA 50 of the closes, price units.
    pub ema_slow: f64,
    /// RSI 14 of the closes, 0..100.
    pub rsi: f64,
    /// The values as the model is shown them, formatted once per tick (the prompt, the
    /// template, the tools and the record all show these).
    pub shown: Shown,
}

/// Indicator values as text: EMAs with 4 decimals, RSI with 2 (`{:.4}`, `{:.2}`: the
/// same bytes on every run, so the same request and the same cache key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shown {
    /// EMA 20.
    pub ema_fast: String,
    /// EMA 50.
    pub ema_slow: String,
    /// RSI 14.
    pub rsi: String,
}

impl Levels {
    /// The levels, with their text as shown.
    pub fn new(ema_fast: f64, ema_slow: f64, rsi: f64) -> Levels {
        let shown =
            Shown { ema_fast: format!("{ema_fast:.4}"), ema_slow: format!("{ema_slow:.4}"), rsi: format!("{rsi:.2}") };
        Levels { ema_fast, ema_slow, rsi, shown }
    }

    /// `up` when EMA 20 is above EMA 50, `down` when below, `flat` when equal.
    pub fn trend(&self) -> &'static str {
        if self.ema_fast > self.ema_slow {
            "up"
        } else if self.ema_fast < self.ema_slow {
            "down"
        } else {
            "flat"
        }
    }
}

impl Indicators {
    /// Adds a close; returns the levels once every indicator is warm (from the 50th
    /// close on), `None` before.
    pub fn push(&mut self, close: Decimal) -> Option<Levels> {
        // The documented boundary where prices become f64 for indicator math.
        let x = close.to_f64().unwrap_or(f64::NAN);
        let (fast, slow, rsi) = (self.ema_fast.push(x), self.ema_slow.push(x), self.rsi.push(x));
        Some(Levels::new(fast?, slow?, rsi?))
    }
}

/// The user message for one tick: the market context, the position and the equity.
pub fn user_message(input: &DecisionInput<'_>, levels: &Levels) -> String {
    let mut text = String::with_capacity(512);
    // Writing to a String cannot fail.
    let _ = writeln!(text, "Instrument: {}", input.instrument.as_str());
    let _ = writeln!(text, "Time (UTC): {}", input.ts.to_rfc3339());
    let _ = writeln!(text, "Last price: {}", input.price);
    if let Some(bar) = input.bar {
        let _ = write!(text, "Bar: open {} high {} low {} close {}", bar.open, bar.high, bar.low, bar.close);
        if let Some(volume) = bar.volume {
            let _ = write!(text, " volume {volume}");
        }
        text.push('\n');
    }
    if let Some(quote) = input.quote {
        let _ = writeln!(text, "Bid: {} Ask: {}", quote.bid, quote.ask);
    }
    let _ = writeln!(text, "EMA({EMA_FAST}): {}", levels.shown.ema_fast);
    let _ = writeln!(text, "EMA({EMA_SLOW}): {}", levels.shown.ema_slow);
    let _ = writeln!(text, "RSI({RSI_LEN}): {}", levels.shown.rsi);
    let _ = writeln!(text, "Trend: {} (EMA {EMA_FAST} vs EMA {EMA_SLOW})", levels.trend());
    let position = match input.position_qty.cmp(&Decimal::ZERO) {
        std::cmp::Ordering::Greater => format!("long {} units", input.position_qty),
        std::cmp::Ordering::Less => format!("short {} units", -input.position_qty),
        std::cmp::Ordering::Equal => "flat (no position)".to_string(),
    };
    let _ = writeln!(text, "Position: {position}");
    let _ = writeln!(text, "Equity: {}", input.equity);
    text.push_str("Decide now: answer with the JSON object only.");
    text
}

/// A prompt template file (minijinja, Jinja2's syntax) that replaces the default user
/// message. It sees `instrument`, `time` (RFC 3339 UTC), `price`, `bar` (`open`,
/// `high`, `low`, `close`, `volume`; absent when the tick is not a bar), `bid` and
/// `ask` (absent unless the tick is a quote), `ema_fast`, `ema_slow`, `rsi` (text with
/// 4, 4 and 2 decimals), `trend` (`up`, `down`, `flat`), `position_qty` (signed units),
/// `equity`, and `default_prompt` (the default user message, to wrap). Decimals are
/// text, exact. A variable the template names that does not exist is an error.
pub struct PromptTemplate {
    /// The file, as named in errors.
    file: String,
    env: minijinja::Environment<'static>,
    sha256: String,
}

impl std::fmt::Debug for PromptTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PromptTemplate({})", self.file)
    }
}

impl Clone for PromptTemplate {
    fn clone(&self) -> Self {
        PromptTemplate { file: self.file.clone(), env: self.env.clone(), sha256: self.sha256.clone() }
    }
}

impl PromptTemplate {
    /// The template in `source`, read from `file`; checked by rendering it once on a
    /// sample tick.
    ///
    /// # Errors
    /// A syntax error, or a render error on the sample (an unknown variable, a filter
    /// misused), as one line naming the file and the line: `FILE:LINE: what`.
    pub fn new(file: &str, source: String) -> Result<PromptTemplate, String> {
        use sha2::{Digest, Sha256};
        let sha256 = Sha256::digest(source.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
        let mut env = minijinja::Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        env.set_keep_trailing_newline(true);
        env.add_template_owned("prompt", source).map_err(|e| located(file, &e))?;
        let template = PromptTemplate { file: file.to_string(), env, sha256 };
        let spy = ledger_core::ids::InstrumentId::new("SPY").map_err(|e| e.to_string())?;
        let bar = ledger_core::event::Bar {
            open: Decimal::ONE_HUNDRED,
            high: Decimal::ONE_HUNDRED,
            low: Decimal::ONE_HUNDRED,
            close: Decimal::ONE_HUNDRED,
            volume: Some(Decimal::ONE),
            interval_ns: 60_000_000_000,
        };
        let sample = DecisionInput {
            ts: ledger_core::time::TimestampNs::from_nanos(0),
            instrument: &spy,
            price: Decimal::ONE_HUNDRED,
            bar: Some(&bar),
            quote: None,
            position_qty: Decimal::ZERO,
            equity: Decimal::ONE_HUNDRED,
            context: None,
        };
        template.render(&sample, &Levels::new(100.0, 100.0, 50.0))?;
        Ok(template)
    }

    /// Reads and checks the template file `path`.
    ///
    /// # Errors
    /// The file cannot be read, or as [`PromptTemplate::new`].
    pub fn load(path: &std::path::Path) -> Result<PromptTemplate, String> {
        let file = path.display().to_string();
        let source = std::fs::read_to_string(path).map_err(|e| format!("{file}: {e}"))?;
        PromptTemplate::new(&file, source)
    }

    /// SHA-256 of the template's text, lowercase hex (recorded in the provider's params).
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// The user message for one tick.
    ///
    /// # Errors
    /// A render error, as `FILE:LINE: what`.
    pub fn render(&self, input: &DecisionInput<'_>, levels: &Levels) -> Result<String, String> {
        let template = self.env.get_template("prompt").map_err(|e| located(&self.file, &e))?;
        let bar = input.bar.map(|b| {
            minijinja::context! {
                open => b.open.to_string(), high => b.high.to_string(), low => b.low.to_string(),
                close => b.close.to_string(), volume => b.volume.map(|v| v.to_string()),
            }
        });
        let context = minijinja::context! {
            instrument => input.instrument.as_str(),
            time => input.ts.to_rfc3339(),
            price => input.price.to_string(),
            bar => bar,
            bid => input.quote.map(|q| q.bid.to_string()),
            ask => input.quote.map(|q| q.ask.to_string()),
            ema_fast => levels.shown.ema_fast.as_str(),
            ema_slow => levels.shown.ema_slow.as_str(),
            rsi => levels.shown.rsi.as_str(),
            trend => levels.trend(),
            position_qty => input.position_qty.to_string(),
            equity => input.equity.to_string(),
            default_prompt => user_message(input, levels),
        };
        template.render(context).map_err(|e| located(&self.file, &e))
    }
}

/// A template error on one line: `FILE:LINE: what`.
fn located(file: &str, error: &minijinja::Error) -> String {
    let what = match error.detail() {
        Some(detail) => format!("{}: {detail}", error.kind()),
        None => error.kind().to_string(),
    };
    match error.line() {
        Some(line) => format!("prompt template {file}:{line}: {what}"),
        None => format!("prompt template {file}: {what}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger_core::event::Bar;
    use ledger_core::ids::InstrumentId;
    use ledger_core::time::TimestampNs;
    use rust_decimal_macros::dec;

    #[test]
    fn indicators_warm_up_on_the_fiftieth_close() {
        let mut indicators = Indicators::default();
        let levels: Vec<Option<Levels>> = (1..=51).map(|i| indicators.push(Decimal::from(i))).collect();
        // TC0: nothing before the 50th close (EMA 50 is the last to warm).
        assert!(levels[..49].iter().all(Option::is_none));
        // TC1: rising closes: EMA 20 above EMA 50 (trend up), RSI 100 (no losses).
        let last = levels[50].clone().unwrap();
        assert!(last.ema_fast > last.ema_slow, "{last:?}");
        assert_eq!((last.trend(), last.rsi), ("up", 100.0));
    }

    #[test]
    fn the_user_message_shows_the_context() {
        let spy = InstrumentId::new("SPY").unwrap();
        let bar = Bar {
            open: dec!(100),
            high: dec!(102),
            low: dec!(99),
            close: dec!(101.5),
            volume: Some(dec!(1000)),
            interval_ns: 86_400_000_000_000,
        };
        let input = DecisionInput {
            ts: TimestampNs::from_nanos(0),
            instrument: &spy,
            price: dec!(101.5),
            bar: Some(&bar),
            quote: None,
            position_qty: dec!(-3),
            equity: dec!(99500.25),
            context: None,
        };
        let levels = Levels::new(100.0, 100.5, 42.123);
        let text = user_message(&input, &levels);
        for expected in [
            "Instrument: SPY",
            "Last price: 101.5",
            "Bar: open 100 high 102 low 99 close 101.5 volume 1000",
            "EMA(20): 100.0000",
            "EMA(50): 100.5000",
            "RSI(14): 42.12",
            "Trend: down",
            "Position: short 3 units",
            "Equity: 99500.25",
        ] {
            assert!(text.contains(expected), "{expected:?} missing from:\n{text}");
        }
    }

    #[test]
    fn a_template_renders_the_context_and_its_errors_name_the_file_and_line() {
        let spy = InstrumentId::new("SPY").unwrap();
        let quote = ledger_core::event::Quote { bid: dec!(99.5), ask: dec!(100.5), bid_size: None, ask_size: None };
        let input = DecisionInput {
            ts: TimestampNs::from_nanos(0),
            instrument: &spy,
            price: dec!(100),
            bar: None,
            quote: Some(&quote),
            position_qty: dec!(2),
            equity: dec!(1000.50),
            context: None,
        };
        let levels = Levels::new(101.0, 100.0, 55.5);
        let source = "{{ instrument }} at {{ price }} ({{ bid }}/{{ ask }}), trend {{ trend }}, RSI {{ rsi }}\n\
                      {% if bar %}bar{% else %}no bar{% endif %}; held {{ position_qty }} of {{ equity }}";
        let template = PromptTemplate::new("t.j2", source.to_string()).unwrap();
        // TC0: the variables, decimals as written.
        assert_eq!(
            template.render(&input, &levels).unwrap(),
            "SPY at 100 (99.5/100.5), trend up, RSI 55.50\nno bar; held 2 of 1000.50"
        );
        // TC1: the default prompt can be wrapped.
        let wrapped = PromptTemplate::new("w.j2", "Be brief.\n{{ default_prompt }}".into()).unwrap();
        assert_eq!(wrapped.render(&input, &levels).unwrap(), format!("Be brief.\n{}", user_message(&input, &levels)));
        // TC2: a syntax error names the file and the line.
        let error = PromptTemplate::new("bad.j2", "line one\n{% if %}".into()).unwrap_err();
        assert!(error.starts_with("prompt template bad.j2:2: syntax error"), "{error}");
        // TC3: an unknown variable is an error at load (the sample render), with its line.
        let error = PromptTemplate::new("typo.j2", "a\nb\n{{ equty }}".into()).unwrap_err();
        assert!(error.starts_with("prompt template typo.j2:3: undefined value"), "{error}");
        // TC4: a missing file is named.
        let error = PromptTemplate::load(std::path::Path::new("/nonexistent/p.j2")).unwrap_err();
        assert!(error.starts_with("/nonexistent/p.j2: "), "{error}");
    }
}
