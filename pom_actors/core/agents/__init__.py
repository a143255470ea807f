"""The Agent Manager's decisions, pure (docs/agents.md): the agent state machine (`state`),
license distribution (`licenses`), attachment of agents to jobs (`attachment`) and the
pacer's view of a job's agents (`snapshot`)."""
