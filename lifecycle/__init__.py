"""lifecycle: the domain core that keeps an online shop's privacy promises, testable without Dagster."""
