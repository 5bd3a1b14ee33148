//! What agents are told by GetPolicy: the config's intervals and the office's
//! category rules.
//!
//! ```text
//!  console save ──► office_settings["category_rules"] ──┐ (wins)
//!  collector.toml [[agents.category]] ───────────────────┤
//!  the agents' built-in rules (nothing configured) ──────┴─► PolicyNow ─► GetPolicy
//! ```
//!
//! What must stay true:
//! - the policy's version follows its content, so a saved change is a new version
//!   that every agent picks up at its next policy refresh;
//! - a category once in force stays accepted from agents (so an agent still on
//!   the previous rules is never refused for it): saving first adds the new
//!   names to `category_names`, which only grows;
//! - rules are checked with the agents' own classifier before they are saved, so
//!   nothing an agent cannot compile is ever sent.

use crate::config::{AgentPolicy, CategoryRule};
use crate::store::{OfficeSetting, StoreError};
use kaoqin_proto::classify::{self, Classifier, Rule};
use kaoqin_proto::v1 as pb;
use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, RwLock};

/// The office setting that holds the rules saved in the console (a rules file).
pub const CATEGORY_RULES_KEY: &str = "category_rules";
/// The office setting that holds every category name ever saved, one a line.
pub const CATEGORY_NAMES_KEY: &str = "category_names";

/// Where the category rules in force come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RulesSource {
    /// Saved in the console; wins over the config file.
    Console {
        revision: i64,
        actor: String,
        updated_ms: i64,
    },
    /// `[[agents.category]]` in the config file.
    ConfigFile,
    /// Nothing configured: the agents' built-in rules.
    BuiltIn,
}

/// The policy in force.
#[derive(Debug)]
pub struct PolicyNow {
    /// As sent to agents (its version follows its content).
    pub proto: pb::Policy,
    /// The rules agents apply: the office's, or the built-in ones.
    pub rules: Vec<Rule>,
    pub source: RulesSource,
    /// Every category an agent may report.
    categories: HashSet<String>,
}

impl PolicyNow {
    /// Whether agents may report `category`.
    pub fn knows(&self, category: &str) -> bool {
        self.categories.contains(category)
    }
}

/// Reads an office setting by key.
pub type Load = Box<dyn Fn(&str) -> Result<Option<OfficeSetting>, StoreError> + Send + Sync>;

/// Reads office settings from `store`.
pub fn loader(store: Arc<dyn crate::store::Stores>) -> Load {
    Box::new(move |key| store.office_setting(key))
}

/// The policy, reloaded from the store when the saved rules change.
pub struct LivePolicy {
    config: AgentPolicy,
    load: Option<Load>,
    now: RwLock<Arc<PolicyNow>>,
}

fn from_config(rules: &[CategoryRule]) -> Vec<Rule> {
    rules
        .iter()
        .map(|r| Rule {
            category: r.category.clone(),
            process_patterns: r.process_patterns.clone(),
            title_patterns: r.title_patterns.clone(),
        })
        .collect()
}

impl LivePolicy {
    /// The config's policy, never reloaded (tests, tools).
    pub fn fixed(config: &AgentPolicy) -> LivePolicy {
        let now = Arc::new(build(config, None, &[], &HashSet::new()));
        LivePolicy {
            config: config.clone(),
            load: None,
            now: RwLock::new(now),
        }
    }

    /// The config's policy with the rules saved in the store winning; read now
    /// and again on [`LivePolicy::refresh`].
    pub fn stored(config: &AgentPolicy, load: Load) -> LivePolicy {
        let live = LivePolicy {
            load: Some(load),
            ..LivePolicy::fixed(config)
        };
        live.refresh();
        live
    }

    /// The policy as last read (no store access).
    pub fn now(&self) -> Arc<PolicyNow> {
        self.now.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Reads the saved rules' revision and, when it moved, the rules again. If the
    /// store cannot answer, the last policy stays (and the failure is logged).
    pub fn refresh(&self) -> Arc<PolicyNow> {
        let last = self.now();
        let Some(load) = &self.load else {
            return last;
        };
        let saved = match load(CATEGORY_RULES_KEY) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "Cannot read the saved category rules; keeping the last policy.");
                return last;
            }
        };
        let revision = saved.as_ref().map(|s| s.revision);
        let last_revision = match &last.source {
            RulesSource::Console { revision, .. } => Some(*revision),
            _ => None,
        };
        if revision == last_revision {
            return last;
        }
        let names: Vec<String> = match load(CATEGORY_NAMES_KEY) {
            Ok(n) => n
                .map(|n| n.value.lines().map(str::to_owned).collect())
                .unwrap_or_default(),
            Err(e) => {
                tracing::warn!(error = %e, "Cannot read the saved category names; keeping the last policy.");
                return last;
            }
        };
        let fresh = Arc::new(build(&self.config, saved, &names, &last.categories));
        tracing::info!(
            version = fresh.proto.version,
            "Category rules changed; agents get them at their next policy refresh."
        );
        *self.now.write().unwrap_or_else(|e| e.into_inner()) = fresh.clone();
        fresh
    }
}

/// The policy from the config and what was saved; `known` carries categories
/// accepted before.
fn build(
    config: &AgentPolicy,
    saved: Option<OfficeSetting>,
    names: &[String],
    known: &HashSet<String>,
) -> PolicyNow {
    let configured = from_config(&config.categories);
    let saved = saved.and_then(|s| match checked_rules(&s.value) {
        Ok(rules) => Some((rules, s)),
        Err(problems) => {
            tracing::warn!(
                problems = problems.join("; "),
                "The saved category rules cannot be used; the config file's apply."
            );
            None
        }
    });
    let (sent, source) = match saved {
        Some((rules, s)) => (
            rules,
            RulesSource::Console {
                revision: s.revision,
                actor: s.actor,
                updated_ms: s.updated_ms,
            },
        ),
        None if configured.is_empty() => (Vec::new(), RulesSource::BuiltIn),
        None => (configured.clone(), RulesSource::ConfigFile),
    };
    let mut proto_config = config.clone();
    proto_config.categories = sent
        .iter()
        .map(|r| CategoryRule {
            category: r.category.clone(),
            process_patterns: r.process_patterns.clone(),
            title_patterns: r.title_patterns.clone(),
        })
        .collect();
    let categories = classify::CATEGORIES
        .iter()
        .map(|c| (*c).to_owned())
        .chain(configured.iter().map(|r| r.category.clone()))
        .chain(sent.iter().map(|r| r.category.clone()))
        .chain(names.iter().cloned())
        .chain(known.iter().cloned())
        .collect();
    let rules = if sent.is_empty() {
        Classifier::builtin_rules()
    } else {
        sent
    };
    PolicyNow {
        proto: proto_config.to_proto(),
        rules,
        source,
        categories,
    }
}

/// `text` as rules, checked the way agents compile them; else the problems, one
/// a line, naming the rule (counted from 1) and the pattern.
pub fn checked_rules(text: &str) -> Result<Vec<Rule>, Vec<String>> {
    let rules = classify::parse_rules(text).map_err(|e| vec![e.to_string()])?;
    if rules.is_empty() {
        return Err(vec![
            "no [[rule]] tables: an empty list would send agents back to their built-in rules; write them out instead".to_owned(),
        ]);
    }
    Classifier::new(rules.clone()).map_err(|e| vec![numbered_from_one(&e)])?;
    Ok(rules)
}

/// The classifier counts rules from 0; people count from 1.
fn numbered_from_one(e: &classify::ClassifyError) -> String {
    use classify::ClassifyError as E;
    let index = match e {
        E::InvalidCategory { index, .. }
        | E::BadProcessPattern { index, .. }
        | E::EmptyPattern { index, .. }
        | E::NoPatterns { index, .. } => *index,
        E::Parse(_) => return e.to_string(),
    };
    e.to_string().replacen(
        &format!("rule {index} "),
        &format!("rule {} ", index + 1),
        1,
    )
}

/// Saves `text` (checked by [`checked_rules`]) as the office's category rules:
/// first the names, so that no collector ever sends a category it would refuse.
/// Returns the new revision.
pub fn save(
    store: &dyn crate::store::Stores,
    rules: &[Rule],
    text: &str,
    actor: &str,
    now_ms: i64,
) -> Result<i64, StoreError> {
    let mut names: BTreeSet<String> = store
        .office_setting(CATEGORY_NAMES_KEY)?
        .map(|n| n.value.lines().map(str::to_owned).collect())
        .unwrap_or_default();
    let before = names.len();
    names.extend(rules.iter().map(|r| r.category.clone()));
    if names.len() != before {
        let value = names.into_iter().collect::<Vec<_>>().join("\n");
        store.set_office_setting(CATEGORY_NAMES_KEY, &value, actor, now_ms)?;
    }
    store.set_office_setting(CATEGORY_RULES_KEY, text, actor, now_ms)
}

/// What `rules` make of an application, and which rule (counted from 1) decided.
pub fn try_rules(rules: &[Rule], name: &str, title: Option<&str>) -> (String, Option<usize>) {
    let app = classify::App {
        name: name.to_owned(),
        title: title.filter(|t| !t.is_empty()).map(str::to_owned),
    };
    match Classifier::new(rules.to_vec()) {
        Ok(c) => (
            c.classify(&app).to_owned(),
            c.deciding_rule(&app).map(|i| i + 1),
        ),
        Err(_) => (classify::OTHER.to_owned(), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::Mutex;

    fn setting(value: &str, revision: i64) -> OfficeSetting {
        OfficeSetting {
            value: value.to_owned(),
            revision,
            updated_ms: 1,
            actor: "web:admin".into(),
        }
    }

    type Settings = Arc<Mutex<HashMap<String, OfficeSetting>>>;

    fn live(config: &AgentPolicy) -> (LivePolicy, Settings) {
        let settings: Settings = Arc::default();
        let s = settings.clone();
        let load: Load = Box::new(move |k| Ok(s.lock().unwrap().get(k).cloned()));
        (LivePolicy::stored(config, load), settings)
    }

    const GAMES: &str = "[[rule]]\ncategory = \"games\"\nprocess_patterns = [\"steam\"]\n";

    #[test]
    fn saved_rules_win_over_the_config_and_make_a_new_version() {
        let mut config = AgentPolicy::default();
        config.categories.push(CategoryRule {
            category: "chat".into(),
            process_patterns: vec!["wechat".into()],
            title_patterns: vec![],
        });
        let (live, settings) = live(&config);
        let before = live.now();
        assert_eq!(before.source, RulesSource::ConfigFile);
        assert_eq!(before.proto.rules.len(), 1);

        settings
            .lock()
            .unwrap()
            .insert(CATEGORY_RULES_KEY.into(), setting(GAMES, 1));
        // Not read until refreshed.
        assert_eq!(live.now().proto.version, before.proto.version);
        let after = live.refresh();
        assert!(matches!(
            after.source,
            RulesSource::Console { revision: 1, .. }
        ));
        assert_ne!(after.proto.version, before.proto.version);
        assert_eq!(after.proto.rules[0].category, "games");
        // The same revision is not read twice.
        assert!(Arc::ptr_eq(&after, &live.refresh()));
    }

    #[test]
    fn a_category_once_in_force_stays_accepted() {
        let (live, settings) = live(&AgentPolicy::default());
        assert_eq!(live.now().source, RulesSource::BuiltIn);
        assert!(!live.now().knows("lottery"));
        let lottery = "[[rule]]\ncategory = \"lottery\"\ntitle_patterns = [\"彩票\"]\n";
        settings
            .lock()
            .unwrap()
            .insert(CATEGORY_RULES_KEY.into(), setting(lottery, 1));
        assert!(live.refresh().knows("lottery"));
        settings
            .lock()
            .unwrap()
            .insert(CATEGORY_RULES_KEY.into(), setting(GAMES, 2));
        let now = live.refresh();
        assert!(now.knows("lottery") && now.knows("games") && !now.knows("poker"));
        // After a restart, the saved names carry it.
        settings
            .lock()
            .unwrap()
            .insert(CATEGORY_NAMES_KEY.into(), setting("games\nlottery", 1));
        let (restarted, _) = live_with(settings.clone());
        assert!(restarted.now().knows("lottery"));
    }

    fn live_with(settings: Settings) -> (LivePolicy, Settings) {
        let s = settings.clone();
        let load: Load = Box::new(move |k| Ok(s.lock().unwrap().get(k).cloned()));
        (LivePolicy::stored(&AgentPolicy::default(), load), settings)
    }

    #[test]
    fn bad_rules_are_named_counting_from_one() {
        let text = format!("{GAMES}\n[[rule]]\ncategory = \"chat\"\nprocess_patterns = [\"a[\"]\n");
        let problems = checked_rules(&text).unwrap_err();
        assert!(
            problems[0].starts_with("rule 2 (category \"chat\")"),
            "{problems:?}"
        );
        let problems =
            checked_rules("[[rule]]\ncategory = \"Chat!\"\nprocess_patterns = [\"x\"]\n")
                .unwrap_err();
        assert!(problems[0].starts_with("rule 1 "), "{problems:?}");
        assert!(checked_rules("").is_err());
        assert!(checked_rules("[[rule]\n").unwrap_err()[0].contains("rules file"));
    }

    #[test]
    fn the_test_box_names_the_deciding_rule() {
        let rules = checked_rules(&format!(
            "{GAMES}\n[[rule]]\ncategory = \"media\"\ntitle_patterns = [\"bilibili\"]\n"
        ))
        .unwrap();
        assert_eq!(
            try_rules(&rules, "Steam.exe", None),
            ("games".into(), Some(1))
        );
        assert_eq!(
            try_rules(&rules, "chrome", Some("哔哩哔哩 - bilibili")),
            ("media".into(), Some(2))
        );
        assert_eq!(
            try_rules(&rules, "winword", Some("报告.docx")),
            ("other".into(), None)
        );
    }
}
