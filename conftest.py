"""Every suite shares the session's broker and database (see itinera.common.testing)."""

pytest_plugins = ["itinera.common.testing"]
