//! The queue's read commands: `list` and `show` (a request in the live queue, else in
//! the history table).

use super::*;

fn age(t: chrono::DateTime<Utc>) -> String {
    let s = (Utc::now() - t).num_seconds().max(0);
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m", s / 60),
        3600..=86_399 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d", s / 86_400),
    }
}

fn param_summary(r: &Request) -> String {
    Params::parse(r.request_type, &r.parameters)
        .map(|p| p.summary())
        .unwrap_or_else(|_| r.parameters.to_string())
}

pub async fn list(args: ListArgs, config: &Config) -> anyhow::Result<()> {
    let status: Option<Status> = args
        .status
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let state = if args.archived {
        store::read_archived(&config.lake.root).await?
    } else {
        store::read_state(&config.lake.root).await?
    };
    let mut rows: Vec<&Request> = state
        .all()
        .map(|r| r.as_ref())
        .filter(|r| status.is_none_or(|s| r.status == s))
        .collect();
    rows.sort_by(|a, b| b.updated_at.cmp(&a.updated_at).then(b.seq.cmp(&a.seq)));
    let limit = args.limit.unwrap_or(if args.json { 0 } else { 50 });
    if limit > 0 {
        rows.truncate(limit);
    }
    if args.json {
        return print_json(&rows);
    }
    let c = state.counts();
    println!(
        "{}{} requests: {} pending, {} processing, {} success, {} failed, {} cancelled (lake {})",
        if args.archived { "archived: " } else { "" },
        c.total(),
        c.pending,
        c.processing,
        c.success,
        c.failed,
        c.cancelled,
        config.lake.root.display()
    );
    if rows.is_empty() {
        return Ok(());
    }
    println!(
        "{:<8}  {:<16} {:<6} {:>1}  {:<10} {:>3}  {:>6}  {:<22} ERROR",
        "ID", "TYPE", "SYMBOL", "P", "STATUS", "ATT", "AGE", "PARAMETERS"
    );
    // Symbols, parameters and errors may come from other programs: cleaned of control
    // characters, then cut to their column.
    for r in rows {
        let id = r.request_id.to_string();
        println!(
            "{:<8}  {:<16} {:<6} {:>1}  {:<10} {:>3}  {:>6}  {:<22} {}",
            &id[..8],
            r.request_type.as_str(),
            Clean(&r.symbol),
            r.priority,
            r.status.as_str(),
            r.attempts,
            age(r.created_at),
            text::cut(&param_summary(r), 22),
            match (r.window_wait(), r.error_message.as_deref()) {
                (Some(at), _) => waits_for_text(at, Utc::now()),
                (None, Some(e)) => text::cut(e, 60),
                (None, None) => String::new(),
            }
        );
    }
    Ok(())
}

pub async fn show(args: ShowArgs, config: &Config) -> anyhow::Result<()> {
    let root = &config.lake.root;
    let state = store::read_state(root).await?;
    let live = resolve_id(&state, &args.id)
        .ok()
        .filter(|id| state.get(id).is_some());
    let (id, archived) = match live {
        Some(id) => (id, false),
        None => (resolve_archived(root, &state, &args.id).await?, true),
    };
    let history = store::history(root, id).await?;
    let current: Request = match state.get(&id) {
        Some(r) => (**r).clone(),
        None => history.last().cloned().ok_or(QueueError::NotFound(id))?,
    };
    if args.json {
        return print_json(
            &serde_json::json!({"request": current, "history": history, "archived": archived}),
        );
    }
    // Every text column may come from another program: cleaned of control characters.
    let json = |v: &serde_json::Value| -> anyhow::Result<String> {
        Ok(text::clean_lines(&serde_json::to_string_pretty(v)?).replace('\n', "\n               "))
    };
    let r = &current;
    println!("request_id     {}", r.request_id);
    if archived {
        println!(
            "archived       finished, moved with its history to {} (kept live {} days after the last change)",
            crate::queue::rows::HISTORY_TABLE,
            config.queue.keep_finished_days
        );
    }
    println!("request_type   {}", r.request_type);
    println!("symbol         {}", Clean(&r.symbol));
    println!("priority       {}", r.priority);
    println!("status         {}", r.status);
    println!("parameters     {}", json(&r.parameters)?);
    // The row another program wrote keeps its own parameter text: name what each old field
    // was taken to mean.
    if let Some(original) = history
        .iter()
        .flat_map(|h| {
            let given = h
                .result_data
                .as_ref()
                .and_then(|d| d.get(crate::queue::state::GIVEN_PARAMETERS));
            given.into_iter().chain(std::iter::once(&h.parameters))
        })
        .find(|p| !taken_as(r.request_type, p).is_empty())
    {
        println!("given as       {}", Clean(&original.to_string()));
        for line in taken_as(r.request_type, original) {
            println!("taken as       {}", Clean(&line));
        }
    }
    println!("result_table   {}", Clean(&r.result_table));
    println!("created_at     {}", et::utc_and_et(r.created_at));
    println!("updated_at     {}", et::utc_and_et(r.updated_at));
    if let Some(d) = &r.result_data {
        println!("result_data    {}", json(d)?);
    }
    if let Some(e) = &r.error_message {
        println!("error_message  {}", Clean(e));
    }
    println!(
        "attempts       {} ({} counted against the retry limit)",
        r.attempts, r.failures
    );
    if r.during != During::Any {
        println!("during         {}", r.during);
    }
    if let Some(t) = r.next_attempt_at {
        match r.window_wait() {
            Some(_) => println!(
                "next_attempt   {} ({})",
                et::utc_and_et(t),
                waits_for_text(t, Utc::now())
            ),
            None => println!("next_attempt   {}", et::utc_and_et(t)),
        }
    }
    if let Some(k) = &r.schedule_key {
        println!("schedule_key   {}", Clean(k));
    }
    println!("\nhistory ({} rows, New York time):", history.len());
    for h in &history {
        println!(
            "  {} ET  {:<15} {:<10} by {:<9} p{} {}",
            h.updated_at
                .with_timezone(&crate::market::calendar::NEW_YORK)
                .format("%Y-%m-%d %H:%M:%S%.3f"),
            h.event.as_str(),
            h.status.as_str(),
            h.changed_by.as_str(),
            h.priority,
            Clean(h.error_message.as_deref().unwrap_or(""))
        );
    }
    Ok(())
}
