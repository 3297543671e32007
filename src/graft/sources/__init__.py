"""Data sources: company databases (SQLite, PostgreSQL, MySQL/MariaDB) an assistant can query.

The model writes SQL; ``graft.sqlguard`` checks and rewrites it; ``engine`` runs it read-only
with the source's caps and describes the schema; ``demo`` builds a small sample company to try
it on. The settings and the tools live in their own modules beside these. Nothing is imported
here, so importing the package costs nothing and needs no database driver.
"""
