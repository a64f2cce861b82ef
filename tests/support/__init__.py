"""What the tests, the demo and `make invoke` run on: sample cases, the CloudFormation reader, the strict local
Security Hub, the local Lambda runtime. None of it ships in the lambda-crud-detector command."""
