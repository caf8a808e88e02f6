//! The monitor: the one task that owns the decision engines.
//!
//! It receives what the pipeline has durably stored (so every incident's evidence
//! is in the database), judges fixes with the `geofence` engine, turns transitions
//! and device signals into incidents with the `alerting` engine, runs both
//! engines' clocks, carries out officer actions, and stores every effect
//! (incident, timeline, outbox, feed, audit) in one transaction before the live
//! feed sees it. Both engines are single-threaded state machines; one task owning
//! them needs no locks, and its bounded input queue is the backpressure.

pub mod convert;
pub mod world;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use geoward_alerting::audit::AuditEvent;
use geoward_alerting::outbox::OutboxRecord;
use geoward_alerting::sse::{FeedPayload, FeedSequencer, feed_offices};
use geoward_alerting::{
    ActionError, Effect, IncidentEngine, IncidentHeader, IncidentId, OfficeId, OfficerId, SubjectId,
};
use geoward_geofence::{Engine as ZoneEngine, SubjectRules, Transition, TransitionKind};
use tokio::sync::{Notify, broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::config::AlertingConfig;
use crate::metrics::Metrics;
use crate::pipeline::plan::Item;
use crate::store::Store;
use crate::store::alerts::{self, AuditLog, EffectBatch, FeedEvent};
use convert::ts;
use world::{World, ZoneRow};

/// Items of one device that are now durable, in the order they arrived.
#[derive(Debug, Clone)]
pub struct Stored {
    /// The device.
    pub device_id: String,
    /// Fixes and events (duplicates already removed), each with when the
    /// service received it.
    pub items: Vec<(Item, DateTime<Utc>)>,
}

/// An officer action on an incident.
#[derive(Debug, Clone)]
pub enum Action {
    /// Take the incident.
    Acknowledge,
    /// Add a note.
    Note(String),
    /// Resolve with a note.
    Resolve(String),
    /// Move to another office, with a note.
    Reassign {
        /// The new office.
        to: String,
        /// Why.
        note: String,
    },
}

/// Why an action was not carried out.
#[derive(Debug, thiserror::Error)]
pub enum ActionFailure {
    /// The engine refused it (already acknowledged, empty note, ...).
    #[error(transparent)]
    Refused(#[from] ActionError),
    /// No such incident.
    #[error("unknown incident")]
    Unknown,
    /// The monitor is stopping or storage failed.
    #[error("the service is unavailable: {0}")]
    Unavailable(String),
}

/// Input of the monitor task.
#[derive(Debug)]
pub enum Input {
    /// Durable items from the pipeline.
    Stored {
        /// Per device.
        items: Vec<Stored>,
        /// When their batch committed.
        committed_at: DateTime<Utc>,
    },
    /// An officer action and where to send the result.
    Action(ActionRequest),
}

/// An officer action waiting for the monitor.
#[derive(Debug)]
pub struct ActionRequest {
    /// The incident.
    pub incident: IncidentId,
    /// Who acts (`role:name` of the API token).
    pub officer: OfficerId,
    /// What.
    pub action: Action,
    /// The incident header after the action.
    pub reply: oneshot::Sender<Result<IncidentHeader, ActionFailure>>,
}

/// What the rest of the service holds to talk to the monitor.
#[derive(Debug, Clone)]
pub struct MonitorHandle {
    /// Input queue.
    pub tx: mpsc::Sender<Input>,
    /// Poke after registry changes (API, import) to reload at once.
    pub reload: Arc<Notify>,
    /// Live feed events after they are stored.
    pub feed: broadcast::Sender<FeedEvent>,
}

impl MonitorHandle {
    /// Creates the handle and the receiving end for [`run`].
    pub fn new(capacity: usize) -> (MonitorHandle, mpsc::Receiver<Input>) {
        let (tx, rx) = mpsc::channel(capacity);
        let (feed, _) = broadcast::channel(4096);
        (
            MonitorHandle {
                tx,
                reload: Arc::new(Notify::new()),
                feed,
            },
            rx,
        )
    }

    /// Runs an officer action through the monitor.
    pub async fn act(
        &self,
        incident: IncidentId,
        officer: OfficerId,
        action: Action,
    ) -> Result<IncidentHeader, ActionFailure> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Input::Action(ActionRequest {
                incident,
                officer,
                action,
                reply,
            }))
            .await
            .map_err(|_| ActionFailure::Unavailable("monitor stopped".into()))?;
        rx.await
            .map_err(|_| ActionFailure::Unavailable("monitor stopped".into()))?
    }
}

/// Committed batches the monitor judges together at most, so that one effect
/// transaction stays small however far the monitor fell behind.
const MAX_GROUP: usize = 64;

/// Times along the path from received items to the feed events they caused.
#[derive(Debug, Clone)]
struct FeedPath {
    /// When each item that changed an incident was received, and when its
    /// batch committed.
    causes: Vec<(DateTime<Utc>, DateTime<Utc>)>,
    /// The engines had the effects.
    judged: DateTime<Utc>,
}

/// The engines and what is needed to keep them in step with the registry.
pub struct Monitor {
    store: Store,
    audit: AuditLog,
    metrics: Metrics,
    feed: broadcast::Sender<FeedEvent>,
    zones: ZoneEngine,
    incidents: IncidentEngine,
    sequencer: FeedSequencer,
    zone_rows: Vec<ZoneRow>,
    rules: BTreeMap<SubjectId, SubjectRules>,
    devices: HashMap<String, (SubjectId, geoward_alerting::signal::DeviceKind)>,
    /// Order periods of watched subjects (see [`world::World::orders`]).
    orders: world::OrderPeriods,
    /// The device whose fix a subject's zone transitions came from last (evidence of
    /// clock-driven transitions such as a curfew deadline).
    last_device: HashMap<SubjectId, String>,
    stop: CancellationToken,
    cfg: AlertingConfig,
    reload: Arc<Notify>,
}

impl std::fmt::Debug for Monitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Monitor")
            .field("subjects", &self.rules.len())
            .field("zones", &self.zone_rows.len())
            .finish_non_exhaustive()
    }
}

/// Loads the registry and the open incidents into fresh engines. Fails when the
/// database cannot be read: the service must not run without its judges.
pub async fn start(
    store: Store,
    audit: AuditLog,
    metrics: Metrics,
    cfg: AlertingConfig,
    handle: &MonitorHandle,
    stop: CancellationToken,
) -> anyhow::Result<Monitor> {
    let now = Utc::now();
    let world = world::load(&store, now).await?;
    let mut m = Monitor {
        zones: ZoneEngine::new(world::zone_set(&[])?.0, cfg.thresholds.clone()),
        incidents: IncidentEngine::new(cfg.policy.clone(), world.tree.clone()),
        sequencer: FeedSequencer::new(alerts::feed_heads(&store).await?),
        store,
        audit,
        metrics,
        feed: handle.feed.clone(),
        zone_rows: Vec::new(),
        rules: BTreeMap::new(),
        devices: HashMap::new(),
        orders: HashMap::new(),
        last_device: HashMap::new(),
        stop,
        reload: handle.reload.clone(),
        cfg: cfg.clone(),
    };
    m.adopt(world, now).await;
    for incident in alerts::open_incidents(&m.store).await? {
        m.incidents.restore_incident(incident);
    }
    tracing::info!(
        subjects = m.rules.len(),
        zones = m.zone_rows.len(),
        "monitor started"
    );
    Ok(m)
}

/// Runs the monitor until its stop token fires and its queue is drained.
pub async fn run(mut m: Monitor, mut rx: mpsc::Receiver<Input>) {
    let stop = m.stop.clone();
    let reload = m.reload.clone();
    let cfg = m.cfg.clone();
    let mut tick = tokio::time::interval(Duration::from_millis(cfg.tick_ms.max(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reload_every =
        tokio::time::interval(Duration::from_secs(cfg.reload_interval_seconds.max(1)));
    reload_every.tick().await;
    loop {
        tokio::select! {
            biased;
            input = rx.recv() => match input {
                Some(Input::Stored { items, committed_at }) => {
                    // What queued while the last step committed is judged
                    // with this batch and committed in one transaction: under
                    // a burst of incidents the monitor keeps up by committing
                    // less often. An action ends the group and runs after it.
                    let mut group = vec![(items, committed_at)];
                    let mut action = None;
                    while group.len() < MAX_GROUP {
                        match rx.try_recv() {
                            Ok(Input::Stored { items, committed_at }) => group.push((items, committed_at)),
                            Ok(Input::Action(request)) => {
                                action = Some(request);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    m.on_stored(group).await;
                    if let Some(action) = action {
                        m.answer(action).await;
                    }
                }
                Some(Input::Action(request)) => m.answer(request).await,
                None => break,
            },
            _ = reload.notified() => m.reload().await,
            _ = reload_every.tick() => m.reload().await,
            _ = tick.tick() => m.on_tick().await,
            _ = stop.cancelled() => {
                // Drain what the pipeline already handed over, then stop.
                rx.close();
                while let Some(input) = rx.recv().await {
                    if let Input::Stored { items, committed_at } = input {
                        m.on_stored(vec![(items, committed_at)]).await;
                    }
                }
                break;
            }
        }
    }
}

impl Monitor {
    /// Brings the engines in line with a freshly loaded registry.
    async fn adopt(&mut self, world: World, now: DateTime<Utc>) {
        for (_, reason) in &world.skipped {
            self.metrics
                .registry_errors
                .with_label_values(&[reason])
                .inc();
        }
        self.incidents.set_tree(world.tree.clone());
        if world.zones != self.zone_rows {
            let (set, report, broken) = match world::zone_set(&world.zones) {
                Ok(built) => built,
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "zones not rebuilt; keeping the current set");
                    return;
                }
            };
            for (zone, why) in &broken {
                tracing::warn!(zone = %zone, error = %why, "zone left out of the zone engine");
            }
            for d in &report.defects {
                tracing::warn!(defect = ?d, "zone defect");
            }
            let bad = broken.len() + report.defects.len();
            if bad > 0 {
                self.metrics
                    .registry_errors
                    .with_label_values(&["zone_rejected"])
                    .inc_by(bad as u64);
            }
            for (subject, e) in self.zones.replace_zones(set) {
                tracing::warn!(subject = %subject, error = %e, "subject keeps the old zones");
            }
            self.zone_rows = world.zones;
        }
        let mut fx = Vec::new();
        let gone: Vec<SubjectId> = self
            .rules
            .keys()
            .filter(|s| !world.subjects.contains_key(*s))
            .cloned()
            .collect();
        for s in gone {
            self.zones.remove_subject(s.as_str());
            self.rules.remove(&s);
            fx.extend(self.incidents.remove_subject(&s, ts(now)));
        }
        for (id, w) in world.subjects {
            if self.rules.get(&id) != Some(&w.rules) {
                match self.zones.set_subject(id.0.clone(), w.rules.clone()) {
                    Ok(()) => {
                        self.rules.insert(id.clone(), w.rules);
                    }
                    Err(e) => {
                        tracing::warn!(subject = %id, error = %e, "subject rules cannot be enforced");
                        self.metrics
                            .registry_errors
                            .with_label_values(&[e.reason()])
                            .inc();
                        continue;
                    }
                }
            }
            if self.incidents.subject(&id) != Some(&w.config)
                && let Err(e) = self.incidents.upsert_subject(w.config, ts(now))
            {
                tracing::warn!(subject = %id, error = %e, "subject not taken by the incident engine");
                self.metrics
                    .registry_errors
                    .with_label_values(&[e.reason()])
                    .inc();
            }
        }
        self.devices = world.devices;
        self.orders = world.orders;
        self.commit(fx, None).await;
    }

    /// True when one of `subject`'s orders covers `time`.
    fn under_order(&self, subject: &SubjectId, time: DateTime<Utc>) -> bool {
        self.orders
            .get(subject)
            .is_some_and(|o| o.iter().any(|(start, end)| *start <= time && time < *end))
    }

    async fn reload(&mut self) {
        let now = Utc::now();
        match world::load(&self.store, now).await {
            Ok(w) => self.adopt(w, now).await,
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "reloading the registry failed; keeping the current one");
            }
        }
    }

    /// Judges committed batches, in the order they were committed, and stores
    /// their effects in one transaction.
    async fn on_stored(&mut self, group: Vec<(Vec<Stored>, DateTime<Utc>)>) {
        let mut fx = Vec::new();
        // When the service received each item that changed an incident, and
        // when its batch committed: the fix-to-feed latency is measured from
        // there.
        let mut causes = Vec::new();
        for (s, committed_at) in group
            .into_iter()
            .flat_map(|(batch, at)| batch.into_iter().map(move |s| (s, at)))
        {
            let Some((subject, kind)) = self.devices.get(&s.device_id).cloned() else {
                self.metrics
                    .unjudged_items
                    .with_label_values(&["no_active_order"])
                    .inc_by(s.items.len() as u64);
                continue;
            };
            let mut items = s.items;
            // Per device, by event time: a store-and-forward batch may carry fixes
            // in any order; the engines place late data themselves.
            items.sort_by_key(|(item, _)| item.time());
            for (item, received_at) in &items {
                let effects_before = fx.len();
                // Taken before the order began or after it ended (late
                // uploads, a device handed out early): no legal basis, so it
                // is never judged nor cited as an incident's evidence. It
                // stays in the device's raw evidence chain, the record of
                // what was received.
                if !self.under_order(&subject, item.time()) {
                    self.metrics
                        .unjudged_items
                        .with_label_values(&["outside_order"])
                        .inc();
                    continue;
                }
                let now = Utc::now();
                for signal in convert::device_signals(&subject, &s.device_id, kind, item) {
                    self.apply(&signal, now, &mut fx);
                }
                if let Some(fix) = convert::geofence_fix(item) {
                    match self.zones.observe(subject.as_str(), fix, now) {
                        Ok(ts) => {
                            self.last_device
                                .insert(subject.clone(), s.device_id.clone());
                            self.on_transitions(&ts, &s.device_id, now, &mut fx);
                        }
                        Err(e) => {
                            self.metrics
                                .unjudged_items
                                .with_label_values(&[e.reason()])
                                .inc();
                        }
                    }
                }
                if fx[effects_before..]
                    .iter()
                    .any(|e| matches!(e, Effect::Incident(_)))
                {
                    causes.push((*received_at, committed_at));
                }
            }
        }
        let path = FeedPath {
            causes,
            judged: Utc::now(),
        };
        self.commit(fx, Some(path)).await;
    }

    fn apply(
        &mut self,
        signal: &geoward_alerting::Signal,
        now: DateTime<Utc>,
        fx: &mut Vec<Effect>,
    ) {
        match self.incidents.apply(signal, ts(now)) {
            Ok(more) => fx.extend(more),
            Err(e) => {
                self.metrics
                    .unjudged_items
                    .with_label_values(&[e.reason()])
                    .inc();
            }
        }
    }

    fn on_transitions(
        &mut self,
        transitions: &[Transition],
        device: &str,
        now: DateTime<Utc>,
        fx: &mut Vec<Effect>,
    ) {
        for t in transitions {
            if t.kind == TransitionKind::PossibleCrossing {
                self.metrics.possible_crossings.inc();
                tracing::info!(subject = %t.subject, rule = ?t.rule, "possible crossing of an exclusion zone between sparse fixes");
                continue;
            }
            if let Some(signal) = convert::zone_signal(t, device) {
                self.apply(&signal, now, fx);
            }
        }
    }

    async fn on_tick(&mut self) {
        let now = Utc::now();
        let mut fx = Vec::new();
        let transitions = self.zones.tick(now);
        for t in &transitions {
            let device = self
                .last_device
                .get(&SubjectId(t.subject.clone()))
                .cloned()
                .unwrap_or_default();
            self.on_transitions(std::slice::from_ref(t), &device, now, &mut fx);
        }
        fx.extend(self.incidents.tick(ts(now)));
        self.commit(fx, None).await;
    }

    /// Carries out an officer action and sends its result to the caller.
    async fn answer(&mut self, request: ActionRequest) {
        let ActionRequest {
            incident,
            officer,
            action,
            reply,
        } = request;
        let result = self.on_action(&incident, &officer, action).await;
        let _ = reply.send(result);
    }

    async fn on_action(
        &mut self,
        id: &IncidentId,
        officer: &OfficerId,
        action: Action,
    ) -> Result<IncidentHeader, ActionFailure> {
        if self.incidents.incident(id).is_none() {
            // Handled incidents leave memory after retention; bring it back.
            match alerts::incident(&self.store, id.as_str()).await {
                Ok(Some(i)) => self.incidents.restore_incident(i),
                Ok(None) => return Err(ActionFailure::Unknown),
                Err(e) => return Err(ActionFailure::Unavailable(format!("{e:#}"))),
            }
        }
        let now = ts(Utc::now());
        let fx = match action {
            Action::Acknowledge => self.incidents.acknowledge(id, officer, now)?,
            Action::Note(text) => self.incidents.add_note(id, officer, &text, now)?,
            Action::Resolve(note) => self.incidents.resolve(id, officer, &note, now)?,
            Action::Reassign { to, note } => {
                self.incidents
                    .reassign(id, officer, &OfficeId(to), &note, now)?
            }
        };
        if !self.commit(fx, None).await {
            return Err(ActionFailure::Unavailable("storage unavailable".into()));
        }
        self.incidents
            .incident(id)
            .map(|i| i.header.clone())
            .ok_or(ActionFailure::Unknown)
    }

    /// Stores effects, retrying until it succeeds or the service stops, then
    /// publishes the feed events. True when stored. `path` times the effects of
    /// received items (not of ticks or officer actions).
    async fn commit(&mut self, fx: Vec<Effect>, path: Option<FeedPath>) -> bool {
        if fx.is_empty() {
            return true;
        }
        let now_ms = Utc::now().timestamp_millis();
        let mut batch = EffectBatch::default();
        for effect in fx {
            match effect {
                Effect::Incident(change) => {
                    let event = change.entry.event.code();
                    self.metrics
                        .incident_changes
                        .with_label_values(&[event])
                        .inc();
                    if event == "opened" {
                        self.metrics
                            .incidents_opened
                            .with_label_values(&[change.header.kind.code()])
                            .inc();
                    }
                    let data = FeedPayload::from_change(&change).to_json();
                    for office in feed_offices(self.incidents.tree(), &change.header) {
                        batch.feed.push(FeedEvent {
                            id: self.sequencer.next_id(&office),
                            office: office.0,
                            at_ms: now_ms,
                            data: data.clone(),
                        });
                    }
                    batch.changes.push(*change);
                }
                Effect::Notify(n) => batch
                    .outbox
                    .push(OutboxRecord::new(*n, geoward_alerting::Timestamp(now_ms))),
                Effect::Audit(a) => batch.audit.push(a),
            }
        }
        let mut backoff = Duration::from_millis(100);
        loop {
            match alerts::commit_effects(&self.store, &self.audit, &batch).await {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "storing incident changes failed, retrying");
                    tokio::select! {
                        _ = self.stop.cancelled() => return false,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        if let Some(path) = path
            && !batch.feed.is_empty()
        {
            let fed = Utc::now();
            let stages = &self.metrics.fix_to_feed_stage_seconds;
            let (committed, judged) = (
                stages.with_label_values(&["fix_committed"]),
                stages.with_label_values(&["judged"]),
            );
            for (received, fix_committed) in path.causes {
                let since = |t: DateTime<Utc>| {
                    (t - received).num_microseconds().unwrap_or(0).max(0) as f64 / 1e6
                };
                committed.observe(since(fix_committed));
                judged.observe(since(path.judged));
                self.metrics.fix_to_feed_seconds.observe(since(fed));
            }
        }
        for f in batch.feed {
            // No receivers is fine: the event is stored for later readers.
            let _ = self.feed.send(f);
        }
        true
    }
}

/// The audit event of a person reading or changing registry data through the API.
pub fn api_audit_event(actor: &str, action: &str, detail: serde_json::Value) -> AuditEvent {
    AuditEvent {
        at: ts(Utc::now()),
        actor: actor.to_owned(),
        action: action.to_owned(),
        incident: None,
        detail: detail.to_string(),
    }
}
