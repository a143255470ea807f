"""The plain classes behind the actors: each receives its collaborators and is driven by a
thin `@ray.remote` shell (DESIGN.md, principle 5), or by fakes in the unit tests."""
