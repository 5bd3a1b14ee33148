//! Application -> category, evaluated on the PC (and, for the console's test box,
//! by the collector, with the same code).
//!
//! The probe sees executable names and window titles; the classifier turns them
//! into one category name, and only that (as seconds per category) leaves the PC.
//!
//! ```text
//!  App { name: "WeChat.exe", title } ──► strip ".exe" ──► "WeChat"
//!        │                                                  │ process globs (case-insensitive)
//!        └── title (if any) ── lower-case ── substrings ────┤
//!                                                           ▼
//!                                   first matching rule's category, else "other"
//! ```
//!
//! What must stay true:
//! - Rules are tried in order; the first that matches decides. A rule with process
//!   and title patterns matches if either matches.
//! - Process patterns are globs over the executable's file name with a trailing
//!   `.exe` removed on both sides, compared case-insensitively.
//! - Title patterns are case-insensitive substrings, tried only when a title exists.
//! - Every category name satisfies [`is_valid_category`]; a bad rule is refused
//!   with its index, category and pattern, never skipped.
//!
//! The built-in rule set lives in `default-rules.toml` next to this file, so IT can
//! read and copy it.

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

/// An application as a probe sees it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct App {
    /// The executable's file name without directory and without `.exe`
    /// (not the 15-character kernel comm name on Linux).
    pub name: String,
    /// The window title, where the desktop exposes it. Evaluated on the PC only
    /// (and in the collector's rule test box, where an officer types it).
    pub title: Option<String>,
}

/// The categories the product knows. An office may add its own names.
pub const CATEGORIES: &[&str] = &[
    "chat",
    "games",
    "media",
    "downloads",
    "nonwork_web",
    "work",
    "other",
];

/// The category of an application no rule matches.
pub const OTHER: &str = "other";

const DEFAULT_RULES: &str = include_str!("default-rules.toml");

/// Whether `name` may be used as a category: a known one, or an office's own
/// matching `[a-z][a-z0-9_]{0,31}`.
pub fn is_valid_category(name: &str) -> bool {
    if CATEGORIES.contains(&name) {
        return true;
    }
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 32
        && bytes[0].is_ascii_lowercase()
        && bytes[1..]
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_')
}

/// One category rule.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub category: String,
    /// Case-insensitive globs over the executable's file name (`.exe` removed).
    #[serde(default)]
    pub process_patterns: Vec<String>,
    /// Case-insensitive substrings of the window title.
    #[serde(default)]
    pub title_patterns: Vec<String>,
}

/// A rule that cannot be used. Names the rule (0-based index), its category and
/// the offending pattern.
#[derive(Debug, thiserror::Error)]
pub enum ClassifyError {
    #[error(
        "rule {index} (category {category:?}): not a valid category name; use one of {known} or a name matching [a-z][a-z0-9_]{{0,31}}",
        known = CATEGORIES.join(", ")
    )]
    InvalidCategory { index: usize, category: String },
    #[error("rule {index} (category {category:?}): bad process pattern {pattern:?}")]
    BadProcessPattern {
        index: usize,
        category: String,
        pattern: String,
        source: globset::Error,
    },
    #[error("rule {index} (category {category:?}): empty {kind} pattern")]
    EmptyPattern {
        index: usize,
        category: String,
        kind: &'static str,
    },
    #[error("rule {index} (category {category:?}): has neither process nor title patterns")]
    NoPatterns { index: usize, category: String },
    #[error("rules file: {0}")]
    Parse(#[from] toml::de::Error),
}

/// The rules file format: a list of `[[rule]]` tables.
#[derive(Debug, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    #[serde(default)]
    rule: Vec<Rule>,
}

/// Parses a rules file of `[[rule]]` tables (the format of `default-rules.toml`).
/// The rules are not validated until [`Classifier::new`].
pub fn parse_rules(text: &str) -> Result<Vec<Rule>, ClassifyError> {
    Ok(toml::from_str::<RulesFile>(text)?.rule)
}

/// `rules` as a rules file that [`parse_rules`] reads back.
pub fn rules_to_toml(rules: &[Rule]) -> String {
    toml::to_string(&RulesFile {
        rule: rules.to_vec(),
    })
    .unwrap_or_default()
}

#[derive(Debug, Clone)]
struct Compiled {
    process: Option<GlobSet>,
    /// Lower-cased.
    titles: Vec<String>,
}

/// Maps applications to categories with an ordered list of rules.
#[derive(Debug, Clone)]
pub struct Classifier {
    rules: Vec<Rule>,
    compiled: Vec<Compiled>,
}

/// Removes a trailing `.exe` (any case).
pub fn strip_exe(name: &str) -> &str {
    let n = name.len();
    if n > 4 && name.is_char_boundary(n - 4) && name[n - 4..].eq_ignore_ascii_case(".exe") {
        &name[..n - 4]
    } else {
        name
    }
}

impl Classifier {
    /// Validates and compiles `rules`, in order.
    pub fn new(rules: Vec<Rule>) -> Result<Classifier, ClassifyError> {
        let mut compiled = Vec::with_capacity(rules.len());
        for (index, rule) in rules.iter().enumerate() {
            let category = || rule.category.clone();
            if !is_valid_category(&rule.category) {
                return Err(ClassifyError::InvalidCategory {
                    index,
                    category: category(),
                });
            }
            if rule.process_patterns.is_empty() && rule.title_patterns.is_empty() {
                return Err(ClassifyError::NoPatterns {
                    index,
                    category: category(),
                });
            }
            let process = if rule.process_patterns.is_empty() {
                None
            } else {
                let mut set = GlobSetBuilder::new();
                for pattern in &rule.process_patterns {
                    let p = strip_exe(pattern.trim());
                    if p.is_empty() {
                        return Err(ClassifyError::EmptyPattern {
                            index,
                            category: category(),
                            kind: "process",
                        });
                    }
                    let glob = GlobBuilder::new(p)
                        .case_insensitive(true)
                        .backslash_escape(true)
                        .build()
                        .map_err(|source| ClassifyError::BadProcessPattern {
                            index,
                            category: category(),
                            pattern: pattern.clone(),
                            source,
                        })?;
                    set.add(glob);
                }
                Some(
                    set.build()
                        .map_err(|source| ClassifyError::BadProcessPattern {
                            index,
                            category: category(),
                            pattern: rule.process_patterns.join(", "),
                            source,
                        })?,
                )
            };
            let mut titles = Vec::with_capacity(rule.title_patterns.len());
            for pattern in &rule.title_patterns {
                if pattern.trim().is_empty() {
                    return Err(ClassifyError::EmptyPattern {
                        index,
                        category: category(),
                        kind: "title",
                    });
                }
                titles.push(pattern.to_lowercase());
            }
            compiled.push(Compiled { process, titles });
        }
        Ok(Classifier { rules, compiled })
    }

    /// The default rule set (`default-rules.toml`).
    pub fn builtin() -> Classifier {
        // The file is part of the binary and covered by tests.
        Classifier::new(Self::builtin_rules()).expect("default-rules.toml is valid")
    }

    /// The rules of `default-rules.toml`, in order.
    pub fn builtin_rules() -> Vec<Rule> {
        parse_rules(DEFAULT_RULES).expect("default-rules.toml parses")
    }

    /// The first matching rule's category, else `"other"`.
    pub fn classify(&self, app: &App) -> &str {
        self.deciding_rule(app)
            .map_or(OTHER, |i| self.rules[i].category.as_str())
    }

    /// The index of the first rule that matches `app`, if any.
    pub fn deciding_rule(&self, app: &App) -> Option<usize> {
        let name = strip_exe(app.name.trim());
        let title = app.title.as_deref().map(str::to_lowercase);
        self.compiled.iter().position(|c| {
            c.process.as_ref().is_some_and(|set| set.is_match(name))
                || title
                    .as_ref()
                    .is_some_and(|title| c.titles.iter().any(|t| title.contains(t.as_str())))
        })
    }

    /// The rules, in the order they are tried.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(name: &str, title: Option<&str>) -> App {
        App {
            name: name.to_owned(),
            title: title.map(str::to_owned),
        }
    }

    #[test]
    fn rules_written_out_read_back_the_same() {
        let rules = Classifier::builtin_rules();
        let text = rules_to_toml(&rules);
        assert!(text.contains("[[rule]]"), "{text}");
        assert_eq!(parse_rules(&text).unwrap(), rules);
    }

    #[test]
    fn default_rules_parse_and_compile() {
        let rules = Classifier::builtin_rules();
        assert!(rules.len() >= 6);
        for r in &rules {
            assert!(is_valid_category(&r.category), "{}", r.category);
            assert!(CATEGORIES.contains(&r.category.as_str()));
        }
        let c = Classifier::builtin();
        assert_eq!(c.rules(), &rules[..]);
        // The browser title rule comes last among the non-work ones, so desktop
        // apps win over it.
        assert_eq!(
            rules.last().map(|r| r.category.as_str()),
            Some("nonwork_web")
        );
    }

    #[test]
    fn builtin_classifies_the_table() {
        let c = Classifier::builtin();
        #[rustfmt::skip]
        let cases: &[(&str, Option<&str>, &str)] = &[
            // chat
            ("WeChat.exe", None, "chat"),
            ("wechat", None, "chat"),
            ("WECHAT.EXE", None, "chat"),
            ("WeChatAppEx.exe", None, "chat"),
            ("Weixin.exe", Some("微信"), "chat"),
            ("QQ.exe", None, "chat"),
            ("linuxqq", None, "chat"),
            ("qq", None, "chat"),
            ("TIM.exe", None, "chat"),
            ("DingTalk.exe", None, "chat"),
            ("dingtalk", None, "chat"),
            ("com.alibabainc.dingtalk", None, "chat"),
            ("WXWork.exe", None, "chat"),
            ("Feishu.exe", None, "chat"),
            ("bytedance-feishu", None, "chat"),
            ("Telegram.exe", None, "chat"),
            ("telegram-desktop", None, "chat"),
            ("Discord.exe", None, "chat"),
            ("slack", None, "chat"),
            ("YY.exe", None, "chat"),
            // chat wins over a title that names a site
            ("WeChat.exe", Some("淘宝购物链接"), "chat"),
            // games
            ("steam", None, "games"),
            ("Steam.exe", None, "games"),
            ("WeGame.exe", None, "games"),
            ("LeagueClient.exe", None, "games"),
            ("League of Legends.exe", None, "games"),
            ("YuanShen.exe", None, "games"),
            ("GenshinImpact.exe", None, "games"),
            ("crossfire.exe", None, "games"),
            ("DNF.exe", None, "games"),
            ("Battle.net.exe", None, "games"),
            ("EpicGamesLauncher.exe", None, "games"),
            ("QQGame.exe", None, "games"),
            ("supertuxkart", None, "games"),
            ("0ad", None, "games"),
            ("sol", None, "games"),
            // media
            ("KuGou.exe", None, "media"),
            ("kugou", None, "media"),
            ("QQMusic.exe", None, "media"),
            ("qqmusic", None, "media"),
            ("cloudmusic.exe", None, "media"),
            ("netease-cloud-music", None, "media"),
            ("KwMusic.exe", None, "media"),
            ("QyClient.exe", None, "media"),
            ("iQIYI Video.exe", None, "media"),
            ("YoukuDesktop.exe", None, "media"),
            ("QQLive.exe", None, "media"),
            ("哔哩哔哩.exe", Some("哔哩哔哩 (゜-゜)つロ 干杯~"), "media"),
            ("bilibili", Some("bilibili"), "media"),
            ("PotPlayerMini64.exe", None, "media"),
            ("vlc", None, "media"),
            ("mpv", None, "media"),
            ("Spotify.exe", None, "media"),
            ("douyin.exe", None, "media"),
            ("deepin-music", None, "media"),
            ("deepin-movie", None, "media"),
            ("HuyaClient.exe", None, "media"),
            // downloads
            ("Thunder.exe", None, "downloads"),
            ("XLLiveUD.exe", None, "downloads"),
            ("thunder", None, "downloads"),
            ("xunlei", None, "downloads"),
            ("BaiduNetdisk.exe", None, "downloads"),
            ("uTorrent.exe", None, "downloads"),
            ("qbittorrent", None, "downloads"),
            ("transmission-gtk", None, "downloads"),
            ("aria2c", None, "downloads"),
            ("IDMan.exe", None, "downloads"),
            ("BitComet.exe", None, "downloads"),
            ("Motrix.exe", None, "downloads"),
            // nonwork_web: browsers showing non-work sites
            ("chrome.exe", Some("【京东超市】金龙鱼 食用油 5L【行情 报价 价格 评测】-京东 - Google Chrome"), "nonwork_web"),
            ("msedge.exe", Some("淘宝网 - 淘！我喜欢 - 个人 - Microsoft Edge"), "nonwork_web"),
            ("firefox", Some("【4K】年度盛典_哔哩哔哩_bilibili — Mozilla Firefox"), "nonwork_web"),
            ("firefox", Some("BILIBILI"), "nonwork_web"),
            ("360se.exe", Some("斗鱼 - 每个人的直播平台"), "nonwork_web"),
            ("QQBrowser.exe", Some("拼多多"), "nonwork_web"),
            ("chromium", Some("抖音-记录美好生活"), "nonwork_web"),
            ("chrome", Some("4399小游戏 - 在线小游戏"), "nonwork_web"),
            ("chrome", Some("微博 – 随时随地发现新鲜事"), "nonwork_web"),
            // negatives: office work and work sites stay "other"
            ("WINWORD.EXE", None, "other"),
            ("WINWORD.EXE", Some("淘宝采购合同.docx - Word"), "other"),
            ("wps", Some("关于抖音账号管理的通知.wps"), "other"),
            ("et", None, "other"),
            ("code", Some("main.rs - kaoqin - Visual Studio Code"), "other"),
            ("thunderbird", Some("Inbox - 京东商城订单"), "other"),
            ("firefox", Some("中华人民共和国中央人民政府 - www.gov.cn — Mozilla Firefox"), "other"),
            ("firefox", Some("政务微博管理办法 - 北京市人民政府"), "other"),
            ("chrome.exe", Some("北京东城区政务服务中心"), "other"),
            ("chrome.exe", Some("发文编号 43990 - OA"), "other"),
            ("chrome.exe", None, "other"),
            ("javaw.exe", None, "other"),
            ("qqbrowser", None, "other"),
            ("svchost.exe", None, "other"),
            ("", None, "other"),
        ];
        assert!(cases.len() >= 30);
        let mut failures = Vec::new();
        for (name, title, want) in cases {
            let got = c.classify(&app(name, *title));
            if got != *want {
                failures.push(format!("{name:?} {title:?}: got {got}, want {want}"));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn process_patterns_strip_exe_and_ignore_case_on_both_sides() {
        let c = Classifier::new(vec![Rule {
            category: "chat".into(),
            process_patterns: vec!["WeChat.EXE".into(), "fei*".into()],
            title_patterns: vec![],
        }])
        .unwrap();
        for name in ["wechat", "WeChat.exe", "WECHAT", "feishu.exe", "FeiShu"] {
            assert_eq!(c.classify(&app(name, None)), "chat", "{name}");
        }
        for name in ["wechat2", "mywechat.exe", "wechat.exe.bak", "exe"] {
            assert_eq!(c.classify(&app(name, None)), "other", "{name}");
        }
    }

    #[test]
    fn title_patterns_need_a_title_and_ignore_case() {
        let c = Classifier::new(vec![Rule {
            category: "nonwork_web".into(),
            process_patterns: vec![],
            title_patterns: vec!["YouTube".into()],
        }])
        .unwrap();
        assert_eq!(
            c.classify(&app("chrome", Some("cats - youtube"))),
            "nonwork_web"
        );
        assert_eq!(c.classify(&app("youtube", None)), "other");
    }

    #[test]
    fn either_kind_of_pattern_matches_and_first_rule_wins() {
        let rules = vec![
            Rule {
                category: "media".into(),
                process_patterns: vec!["bilibili*".into()],
                title_patterns: vec!["番剧".into()],
            },
            Rule {
                category: "nonwork_web".into(),
                process_patterns: vec![],
                title_patterns: vec!["bilibili".into()],
            },
        ];
        let c = Classifier::new(rules.clone()).unwrap();
        assert_eq!(c.classify(&app("bilibili", Some("bilibili"))), "media");
        assert_eq!(c.classify(&app("chrome", Some("番剧 - bilibili"))), "media");
        assert_eq!(c.classify(&app("chrome", Some("bilibili"))), "nonwork_web");
        assert_eq!(c.rules(), &rules[..]);
    }

    #[test]
    fn office_categories_are_accepted() {
        let c = Classifier::new(vec![Rule {
            category: "stock_trading".into(),
            process_patterns: vec!["tdx*".into()],
            title_patterns: vec![],
        }])
        .unwrap();
        assert_eq!(c.classify(&app("TdxW.exe", None)), "stock_trading");
    }

    #[test]
    fn valid_category_names() {
        for ok in [
            "chat",
            "other",
            "work",
            "a",
            "stock_trading",
            "x1_2",
            &"a".repeat(32),
        ] {
            assert!(is_valid_category(ok), "{ok}");
        }
        for bad in [
            "",
            "Chat",
            "1abc",
            "_x",
            "a-b",
            "a b",
            "聊天",
            &"a".repeat(33),
        ] {
            assert!(!is_valid_category(bad), "{bad}");
        }
    }

    #[test]
    fn invalid_rules_are_refused_with_index_category_and_pattern() {
        let rule = |category: &str, p: &[&str], t: &[&str]| Rule {
            category: category.into(),
            process_patterns: p.iter().map(|s| (*s).to_owned()).collect(),
            title_patterns: t.iter().map(|s| (*s).to_owned()).collect(),
        };
        let good = rule("chat", &["qq"], &[]);

        let e = Classifier::new(vec![good.clone(), rule("Games!", &["x"], &[])]).unwrap_err();
        assert!(
            matches!(&e, ClassifyError::InvalidCategory { index: 1, category } if category == "Games!")
        );
        assert!(e.to_string().contains("rule 1"), "{e}");

        let e = Classifier::new(vec![rule("games", &["steam", "[abc"], &[])]).unwrap_err();
        assert!(matches!(
            &e,
            ClassifyError::BadProcessPattern { index: 0, .. }
        ));
        let msg = e.to_string();
        assert!(
            msg.contains("rule 0") && msg.contains("games") && msg.contains("[abc"),
            "{msg}"
        );

        let e = Classifier::new(vec![good.clone(), good.clone(), rule("media", &[""], &[])])
            .unwrap_err();
        assert!(matches!(
            e,
            ClassifyError::EmptyPattern {
                index: 2,
                kind: "process",
                ..
            }
        ));

        let e = Classifier::new(vec![rule("nonwork_web", &[], &[" "])]).unwrap_err();
        assert!(matches!(
            e,
            ClassifyError::EmptyPattern {
                index: 0,
                kind: "title",
                ..
            }
        ));

        let e = Classifier::new(vec![rule("chat", &[], &[])]).unwrap_err();
        assert!(matches!(e, ClassifyError::NoPatterns { index: 0, .. }));

        assert!(Classifier::new(vec![]).is_ok());
    }

    #[test]
    fn rules_files_parse_and_refuse_unknown_fields() {
        let rules = parse_rules(
            r#"
            [[rule]]
            category = "work"
            process_patterns = ["oa*"]

            [[rule]]
            category = "nonwork_web"
            title_patterns = ["taobao"]
            "#,
        )
        .unwrap();
        assert_eq!(rules.len(), 2);
        assert!(rules[1].process_patterns.is_empty());
        assert!(parse_rules("[[rule]]\ncategory = \"chat\"\nprocess = [\"qq\"]\n").is_err());
        assert!(parse_rules("").unwrap().is_empty());
    }
}
