import { describeOnDatabase, testDatabase } from '../support/test-databases';
import { databaseContractStore } from './database-contract-store';
import { dialectContract } from './dialect-contract';

const database = testDatabase('sqlite');

describeOnDatabase(database, 'The lock store contract', () => dialectContract(databaseContractStore(database)));
