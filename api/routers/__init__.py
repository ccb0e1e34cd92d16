"""HTTP routers: `claims` (the mobile app's contract) and `health` (liveness, readiness)."""
