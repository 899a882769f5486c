"""The paper's tables and figures with provenance (``report``), and the leaderboard (``score``, ``leaderboard``)."""
