"""The read API's routes, one router per resource. Each route checks the token's scope and unit,
calls the service that holds the rule, and turns its answer or its refusal into HTTP."""
