"""Operations: `agentctl` and everything only it uses. Never imported by the runtime (`shared`)."""
