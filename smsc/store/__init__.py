"""The store: schema, migrations, queue operations and the group-commit writer. The only
package that touches the database."""
